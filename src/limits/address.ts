/**
 * Client addresses as the per-client limits key them: four 32-bit words of
 * an IPv6 address, IPv4 addresses (and IPv4-mapped IPv6 ones, which a
 * dual-stack listener reports) as ::ffff:a.b.c.d, so that one client is one
 * key whichever way it arrived. Also the --trust-proxy CIDR list and the
 * X-Forwarded-For rule that uses it. Nothing here allocates per request on
 * the path of an untrusted peer.
 */

/** An address as four signed 32-bit words (Int32Array-compatible), most significant first. */
export type AddressWords = [number, number, number, number];

/** A network: its address words, already masked, and the mask of each word. */
export interface Cidr {
  words: AddressWords;
  masks: AddressWords;
}

const V4_MAPPED = 0xffff;

/** Words of uWS's getRemoteAddress(): 4 bytes (IPv4) or 16 (IPv6); undefined for anything else (a closed socket gives 0). */
export function wordsOfBinary(bytes: Uint8Array, out: AddressWords): boolean {
  if (bytes.length === 4) {
    out[0] = 0;
    out[1] = 0;
    out[2] = V4_MAPPED;
    out[3] = (bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!;
    return true;
  }
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 4; i++) out[i] = (bytes[4 * i]! << 24) | (bytes[4 * i + 1]! << 16) | (bytes[4 * i + 2]! << 8) | bytes[4 * i + 3]!;
  return true;
}

function parseV4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let word = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    word = (word << 8) | n;
  }
  return word | 0;
}

/** An IPv4 or IPv6 address in text (no brackets, no port, no zone), or undefined. */
export function parseAddress(text: string): AddressWords | undefined {
  if (!text.includes(':')) {
    const v4 = parseV4(text);
    return v4 === undefined ? undefined : [0, 0, V4_MAPPED, v4];
  }
  let head = text;
  let tailV4: number | undefined;
  // An IPv6 address may end in dotted IPv4 (::ffff:1.2.3.4).
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    tailV4 = parseV4(text.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  const hextets: number[] = [];
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    hextets.push(parseInt(g, 16));
  }
  const words: AddressWords = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) words[i] = (hextets[2 * i]! << 16) | hextets[2 * i + 1]! | 0;
  if (tailV4 !== undefined) words[3] = tailV4;
  return words;
}

/** The address in text, for logs and tests: a.b.c.d for IPv4 (mapped), else full IPv6 hextets. */
export function formatAddress(words: ArrayLike<number>): string {
  if (words[0] === 0 && words[1] === 0 && words[2] === V4_MAPPED) {
    const w = words[3]! >>> 0;
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
  }
  const out: string[] = [];
  for (let i = 0; i < 4; i++) out.push(((words[i]! >>> 16) & 0xffff).toString(16), (words[i]! & 0xffff).toString(16));
  return out.join(':');
}

/**
 * A --trust-proxy list: comma-separated addresses or CIDRs, IPv4
 * (10.0.0.0/8) or IPv6 (fd00::/8); an address alone is a /32 or /128.
 * Throws an Error naming the entry that is not one.
 */
export function parseCidrList(text: string): Cidr[] {
  if (text.trim() === '') return [];
  return text.split(',').map((raw) => {
    const entry = raw.trim();
    const slash = entry.indexOf('/');
    const addressText = slash === -1 ? entry : entry.slice(0, slash);
    const words = parseAddress(addressText);
    const v4 = !addressText.includes(':');
    const bits = v4 ? 32 : 128;
    const prefixText = slash === -1 ? String(bits) : entry.slice(slash + 1);
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (words === undefined || !(prefix >= 0 && prefix <= bits)) {
      throw new Error(`${JSON.stringify(entry)} is not an IPv4 or IPv6 address or CIDR (such as 10.0.0.0/8 or fd00::/8)`);
    }
    const total = v4 ? 96 + prefix : prefix;
    const masks: AddressWords = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) {
      const inWord = Math.max(0, Math.min(32, total - 32 * i));
      masks[i] = inWord === 0 ? 0 : inWord === 32 ? -1 : (~0 << (32 - inWord)) | 0;
    }
    return { words: words.map((w, i) => w & masks[i]!) as AddressWords, masks };
  });
}

export function inCidrs(cidrs: readonly Cidr[], words: ArrayLike<number>): boolean {
  for (const { words: net, masks } of cidrs) {
    if ((words[0]! & masks[0]) === net[0] && (words[1]! & masks[1]) === net[1] && (words[2]! & masks[2]) === net[2] && (words[3]! & masks[3]) === net[3]) {
      return true;
    }
  }
  return false;
}

/** One X-Forwarded-For entry: an address, optionally [bracketed] and with a :port, as some proxies write it. */
function parseForwardedEntry(raw: string): AddressWords | undefined {
  let entry = raw.trim();
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close === -1 || !/^(:\d{1,5})?$/.test(entry.slice(close + 1))) return undefined;
    entry = entry.slice(1, close);
  } else if (/^[\d.]+:\d{1,5}$/.test(entry)) {
    entry = entry.slice(0, entry.indexOf(':'));
  }
  return parseAddress(entry);
}

/**
 * The client behind trusted proxies: the right-most X-Forwarded-For entry
 * that is not itself a trusted proxy (every proxy appends the address it
 * received the request from, so entries left of it were written by the
 * client and prove nothing). When every entry is a trusted proxy, the
 * left-most. Undefined when the header is empty or an entry read before
 * the client's is not an address: the caller then keys the peer itself.
 */
export function clientFromForwarded(header: string, trusted: readonly Cidr[]): AddressWords | undefined {
  const entries = header.split(',');
  let last: AddressWords | undefined;
  for (let i = entries.length - 1; i >= 0; i--) {
    if (entries[i]!.trim() === '' && entries.length > 1) continue;
    const words = parseForwardedEntry(entries[i]!);
    if (words === undefined) return undefined;
    if (!inCidrs(trusted, words)) return words;
    last = words;
  }
  return last;
}
