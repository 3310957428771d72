/**
 * Open connections per client address, for --max-connections-per-ip. The
 * worker threads count a connection in the shared table when it opens
 * (uWS's filter, which refuses it there when its address is at the limit),
 * but cannot count it out when it closes: by then uWS no longer knows the
 * peer's address (the filter's close call reads an empty one, the socket
 * being closed already), and nothing else names the socket. So the main
 * thread, which serves no requests, counts the open connections to the
 * public port from the kernel's table (/proc/net/tcp and tcp6) every
 * second and writes each tracked address's count back: a closed connection
 * frees its place within a second, or within a tenth of one once a
 * connection was refused. A count is a snapshot: a connection opened
 * while it is taken may be missed by it, so an address can briefly hold a
 * few more than the limit.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { closeSync, openSync, readSync } from 'node:fs';
import os from 'node:os';
import { ConfigError } from '../config/parse.js';
import type { LimitTable } from './table.js';

const ESTABLISHED = '01';
const LITTLE_ENDIAN = os.endianness() === 'LE';
/** Counts this often, and as soon as a look (every LOOK_MS) finds that a connection was refused since. */
const INTERVAL_MS = 1000;
const LOOK_MS = 100;
/**
 * But never more than 1/PACE of the main thread's time: the kernel writes
 * every TCP socket of the network namespace (TIME_WAIT ones included, of
 * every process) into /proc/net/tcp, about 1.3 µs each here, so a count
 * can take tens of ms on a busy machine, and refused connections, which
 * bring the next count forward, must not make an attacker's reconnects
 * cost the main thread a core.
 */
const PACE = 20;
let buffer = Buffer.allocUnsafe(1 << 20);

/** A /proc file whole, read with large reads into one reused buffer (readFileSync reads /proc in small pieces, twice as slow); undefined when unreadable. */
function readProc(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        const larger = Buffer.allocUnsafe(buffer.length * 2);
        buffer.copy(larger);
        buffer = larger;
      }
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) return buffer.toString('latin1', 0, length);
      length += n;
    }
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** One 32-bit word as /proc prints it (%08X of the native value): in network order. */
function word(hex: string): number {
  const n = parseInt(hex, 16);
  if (!LITTLE_ENDIAN) return n | 0;
  return ((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24);
}

/**
 * The lines' fixed layout (the kernel's tcp4_seq_show and tcp6_seq_show:
 * "%4d: " then local address:port, a space, remote address:port, a space,
 * the state in two hex digits): offsets from the end of "NN: ", for IPv4
 * and IPv6. Reading fields at fixed places, rather than splitting every
 * line, keeps a count at about 0.5 µs per line (a machine with 20,000
 * connections: some 10 ms).
 */
const LAYOUT = [
  { file: '/proc/net/tcp', address: 8, port: 9, remote: 14, state: 28 },
  { file: '/proc/net/tcp6', address: 32, port: 33, remote: 38, state: 76 },
] as const;

/** Established connections to local port `port`, by the peer's key (the table's words joined by commas); undefined without /proc. */
export function connectionsByPeer(port: number): Map<string, number> | undefined {
  const counts = new Map<string, number>();
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  let read = 0;
  for (const layout of LAYOUT) {
    const text = readProc(layout.file);
    if (text === undefined) continue;
    read++;
    // The header line has no "NN: "; every other line starts with one.
    for (let at = text.indexOf('\n') + 1; at > 0 && at < text.length; at = text.indexOf('\n', at) + 1) {
      const p = text.indexOf(': ', at) + 2;
      if (p < 2) break;
      if (text.startsWith(ESTABLISHED, p + layout.state) && text.startsWith(portHex, p + layout.port)) {
        const hex = text.slice(p + layout.remote, p + layout.remote + layout.address);
        const key =
          layout.address === 8
            ? `0,0,65535,${word(hex)}`
            : `${word(hex.slice(0, 8))},${word(hex.slice(8, 16))},${word(hex.slice(16, 24))},${word(hex.slice(24))}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
  }
  return read === 0 ? undefined : counts;
}

/**
 * Throws a ConfigError without /proc (not Linux): closed connections would
 * never be counted out, and every address would be refused once it had
 * opened the limit's worth.
 */
export function checkConnectionCounting(): void {
  if (connectionsByPeer(0) === undefined) {
    throw new ConfigError('--max-connections-per-ip needs /proc/net/tcp (Linux) to count connections as they close; set it to 0 here');
  }
}

/**
 * Counts into the table every second, and within LOOK_MS of a refusal (so
 * that a client at its limit that closed a connection is let in again
 * soon), both no sooner than PACE times the last count took, until the
 * returned stop().
 */
export function startConnectionCount(table: LimitTable, port: number): () => void {
  let ended = performance.now();
  let took = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const since = now - ended;
    if (since < PACE * took) return;
    // The note is taken only when a count may follow, so that a refusal during the pause still brings one.
    if (since < INTERVAL_MS && !table.takeRefusedNote()) return;
    const counts = connectionsByPeer(port);
    if (counts !== undefined) table.setConnections(counts);
    ended = performance.now();
    took = ended - now;
  }, LOOK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
