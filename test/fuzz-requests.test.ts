/**
 * Generated protocol requests over real sockets (issue 13 item 6): query
 * strings and form bodies, valid and invalid, with arbitrary methods,
 * channels, messages and callbacks (Unicode, percent sequences, duplicates,
 * corrupt escapes, invalid UTF-8), sent byte for byte to one server with two
 * worker threads. Whatever is sent: never a 5xx, the server stays up, a
 * request the contract says is valid is served, one it says is invalid is
 * refused with a 4xx, a refused put stores nothing, and an accepted put is
 * read back exactly. The seed is printed; COMET_FUZZ_SEED replays it.
 */
import fc from 'fast-check';
import t from 'tap';
import { RESERVED_CALLBACK_SEGMENTS } from '../src/protocol/jsonp.js';
import {
  announceSeed,
  tapSafe,
  callbackArb,
  checkAsyncProperty,
  type Encoding,
  encode,
  encodingArb,
  KNOWN_PARAMS,
  type KnownParam,
  parseAnswers,
  type RawAnswer,
  soup,
  unicode,
} from './helpers/fuzz.js';
import { uniq } from './helpers/protocol.js';
import { rawExchange, sleep, startServer } from './helpers/server.js';

const MAX_MESSAGE_BYTES = 2048;
const MAX_CHANNEL_BYTES = 64;
const MAX_BODY_BYTES = 8192;
const MAX_CALLBACK_LENGTH = 128;

// --poll-timeout 1: a generated get that waits costs a second at most.
const srv = await startServer({
  threads: 2,
  args: [
    '--poll-timeout',
    '1',
    '--max-message-bytes',
    String(MAX_MESSAGE_BYTES),
    '--max-channel-bytes',
    String(MAX_CHANNEL_BYTES),
    '--max-body-bytes',
    String(MAX_BODY_BYTES),
  ],
});
announceSeed(t);

// ---- the request model ------------------------------------------------------------

type Corruption = 'bad-escape' | 'bad-utf8-escape' | 'raw-fffd' | 'raw-invalid-bytes';
const CORRUPTIONS: Record<Corruption, string[]> = {
  'bad-escape': ['%', '%2', '%zz', '%G0', '%%'],
  'bad-utf8-escape': ['%FF', '%C3%28', '%ED%A0%80', '%E2%82', '%C0%AF', '%F4%90%80%80'],
  'raw-fffd': ['\uFFFD'],
  // Marked here, replaced by bytes 0xFF 0xFE when the request is written.
  'raw-invalid-bytes': ['\u0000INVALID\u0000'],
};

interface Pair {
  name: string;
  /** undefined: the name alone, without '='. */
  value: string | undefined;
  nameHow: Encoding;
  valueHow: Encoding;
  mix: number;
  /** In a POST with a query string too: whether this pair travels in the query. */
  inQuery: boolean;
}

type Transport = 'query' | 'head' | 'form' | 'chunked' | 'bad-type' | 'other-method';

interface Spec {
  transport: Transport;
  otherMethod: string;
  formType: string;
  /** The known parameters, each possibly absent; `channel` gets a unique prefix when written. */
  method: string | undefined;
  channel: { kind: 'absent' | 'empty' | 'named' | 'too-long'; suffix: string };
  message: string | undefined;
  callback: string | undefined;
  time: string | undefined;
  timeout: string | undefined;
  pairHow: Array<[Encoding, Encoding, number, boolean]>;
  noise: Pair[];
  duplicates: Array<{ name: KnownParam; value: string; how: Encoding; mix: number }>;
  corruption: { kind: Corruption; variant: number; target: number; inName: boolean } | undefined;
  /** Instead of structured pairs: a fixed method and channel followed by an arbitrary string. */
  soup: { method: 'put' | 'get' | 'sync'; text: string } | undefined;
  chunkAt: number;
}

/** What a client can put on the wire: a lone surrogate has no UTF-8 form, and any encoder sends U+FFFD for it. */
const wire = soup.map((s) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\uFFFD'));

const pairHowArb = fc.tuple(encodingArb, encodingArb, fc.nat(), fc.boolean());
const pairArb: fc.Arbitrary<Pair> = fc.record({
  name: unicode(8).filter((n) => !(KNOWN_PARAMS as readonly string[]).includes(n)),
  value: fc.option(unicode(16), { nil: undefined, freq: 8 }),
  nameHow: encodingArb,
  valueHow: encodingArb,
  mix: fc.nat(),
  inQuery: fc.boolean(),
});
const specials = fc.string({
  unit: fc.constantFrom('%', '+', '&', '=', '#', ' ', '\u2028', '\u2029', '"', '\\', '</script>', '\0', '%41', '\uFFFD', '😀', '\r\n'),
  maxLength: 20,
});
const reservedCallback = fc.tuple(callbackArb, fc.constantFrom(...RESERVED_CALLBACK_SEGMENTS)).map(([cb, r]) => `${cb}.${r}`);
const digits = fc.oneof(fc.constant('0'), fc.nat({ max: 1000 }).map(String), fc.maxSafeNat().map(String));

const specArb: fc.Arbitrary<Spec> = fc.record({
  transport: fc.oneof(
    { weight: 6, arbitrary: fc.constant<Transport>('query') },
    { weight: 1, arbitrary: fc.constant<Transport>('head') },
    { weight: 5, arbitrary: fc.constant<Transport>('form') },
    { weight: 2, arbitrary: fc.constant<Transport>('chunked') },
    { weight: 1, arbitrary: fc.constant<Transport>('bad-type') },
    { weight: 1, arbitrary: fc.constant<Transport>('other-method') },
  ),
  otherMethod: fc.constantFrom('PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND'),
  formType: fc.constantFrom(
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=UTF-8',
    'text/plain',
    'APPLICATION/X-WWW-FORM-URLENCODED',
  ),
  method: fc.oneof(
    { weight: 8, arbitrary: fc.constant('put') },
    { weight: 3, arbitrary: fc.constant('get') },
    { weight: 3, arbitrary: fc.constant('sync') },
    { weight: 2, arbitrary: fc.oneof(wire, fc.constantFrom('PUT', 'Get', 'subscribe', 'put ', '')) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  ),
  channel: fc.record({
    kind: fc.oneof(
      { weight: 12, arbitrary: fc.constant<'named'>('named') },
      { weight: 1, arbitrary: fc.constantFrom<'absent' | 'empty' | 'too-long'>('absent', 'empty', 'too-long') },
    ),
    suffix: unicode(10),
  }),
  message: fc.oneof(
    { weight: 6, arbitrary: unicode(40) },
    { weight: 3, arbitrary: specials },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 400, maxLength: 900 }) },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: fc.constant(undefined) },
  ),
  callback: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: callbackArb },
    { weight: 1, arbitrary: reservedCallback },
    { weight: 1, arbitrary: wire },
  ),
  time: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: digits }, { weight: 1, arbitrary: wire }),
  timeout: fc.oneof(
    { weight: 10, arbitrary: fc.constant('0') },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant('1') },
    { weight: 2, arbitrary: wire },
  ),
  pairHow: fc.array(pairHowArb, { minLength: 6, maxLength: 6 }),
  noise: fc.array(pairArb, { maxLength: 4 }),
  duplicates: fc.array(
    fc.record({
      name: fc.constantFrom(...KNOWN_PARAMS),
      value: fc.oneof(unicode(12), fc.constantFrom('put', 'get', 'sync', '0')),
      how: encodingArb,
      mix: fc.nat(),
    }),
    { maxLength: 3 },
  ),
  // One request in five carries a corruption, one in eight is a valid start followed by arbitrary text.
  corruption: fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constantFrom<Corruption>('bad-escape', 'bad-utf8-escape', 'raw-fffd', 'raw-invalid-bytes'),
        variant: fc.nat(),
        target: fc.nat(),
        inName: fc.boolean(),
      }),
    },
  ),
  soup: fc.oneof(
    { weight: 7, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.record({ method: fc.constantFrom<'put' | 'get' | 'sync'>('put', 'get', 'sync'), text: soup }) },
  ),
  chunkAt: fc.nat(),
});

// ---- from a spec to bytes, and what the contract says of it --------------------------

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const INVALID_MARK = '\u0000INVALID\u0000';

function isIdentifierPath(s: string): boolean {
  return s.split('.').every((seg) => /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(seg));
}

/** What the contract says of a request: served, refused, or either (the test cannot tell, e.g. noise it does not model). */
type Verdict = 'served' | 'refused' | 'either';

interface Built {
  spec: Spec;
  data: Buffer;
  chunks: Buffer[];
  head: boolean;
  verdict: Verdict;
  why: string;
  /** The channel the request names once parsed (undefined: none the test can read back). */
  channel: string | undefined;
  /** A put that stores its message when served (not HEAD). */
  storingPut: boolean;
  /** The message it must store, when the test knows it. */
  message: string | undefined;
}

let serial = 0;

function build(spec: Spec, runTag: string): Built {
  const n = serial++;
  const tag = `${runTag}.${n}.`;
  const inLine = spec.transport === 'query' || spec.transport === 'head' || spec.transport === 'other-method';
  let queryText = '';
  let bodyText = '';
  let verdict: Verdict;
  let why: string;
  let channel: string | undefined;
  let method: string | undefined;
  let message: string | undefined;

  if (spec.soup) {
    // A fixed first method and channel (the first occurrence wins), then anything.
    channel = tag;
    method = spec.soup.method;
    // A get answers at once whatever follows (timeout=0 comes first), so that soups cost no wait.
    const fixed = `method=${method}&channel=${encodeURIComponent(channel)}&${method === 'get' ? 'timeout=0&' : ''}`;
    const text = inLine ? spec.soup.text.replace(/[\0-\x20\x7f#]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`) : spec.soup.text;
    if (inLine) queryText = fixed + text;
    else bodyText = fixed + text;
    verdict = 'either';
    why = 'arbitrary text after a valid start';
    message = undefined;
  } else {
    const known: Array<[KnownParam, string | undefined]> = [
      ['method', spec.method],
      [
        'channel',
        spec.channel.kind === 'absent'
          ? undefined
          : spec.channel.kind === 'empty'
            ? ''
            : spec.channel.kind === 'too-long'
              ? tag + 'x'.repeat(MAX_CHANNEL_BYTES)
              : tag + spec.channel.suffix,
      ],
      ['message', spec.message],
      ['callback', spec.callback],
      ['time', spec.time],
      ['timeout', spec.timeout],
    ];
    const pairs: Pair[] = [];
    known.forEach(([name, value], i) => {
      if (value === undefined) return;
      const [nameHow, valueHow, mix, inQuery] = spec.pairHow[i]!;
      pairs.push({ name, value, nameHow, valueHow, mix, inQuery });
    });
    // Noise goes anywhere among the known pairs; duplicates of known names come after all of them.
    for (const [i, p] of spec.noise.entries()) pairs.splice((p.mix + i) % (pairs.length + 1), 0, p);
    const dupStart = pairs.length;
    for (const d of spec.duplicates) {
      pairs.push({ name: d.name, value: d.name === 'channel' ? `${tag}dup.${d.value}` : d.value, nameHow: d.how, valueHow: d.how, mix: d.mix, inQuery: false });
    }
    const split = spec.transport !== 'query' && spec.transport !== 'head' && spec.transport !== 'other-method';
    const encoded = pairs.map((p, i) => {
      let name = encode(p.name, p.nameHow, p.mix, true, inLine || (split && p.inQuery));
      let value = p.value === undefined ? undefined : encode(p.value, p.valueHow, p.mix + 1, false, inLine || (split && p.inQuery));
      const c = spec.corruption;
      if (c && c.target % pairs.length === i) {
        const bad = CORRUPTIONS[c.kind][c.variant % CORRUPTIONS[c.kind].length]!;
        if (c.inName || value === undefined) name += bad;
        else value += bad;
      }
      return { p, text: value === undefined ? name : `${name}=${value}`, index: i };
    });
    const inQuery = (e: { p: Pair; index: number }) => !split || (e.p.inQuery && e.index < dupStart);
    queryText = encoded
      .filter(inQuery)
      .map((e) => e.text)
      .join('&');
    bodyText = split
      ? encoded
          .filter((e) => !inQuery(e))
          .map((e) => e.text)
          .join('&')
      : '';

    // The parameters as the contract reads them: first occurrence in each part, the body over the query.
    const first = (list: Pair[]) => {
      const out: Partial<Record<KnownParam, string>> = {};
      for (const p of list) if ((KNOWN_PARAMS as readonly string[]).includes(p.name)) out[p.name as KnownParam] ??= p.value ?? '';
      return out;
    };
    const queryPairs = encoded.filter(inQuery).map((e) => e.p);
    const bodyPairs = encoded.filter((e) => !inQuery(e)).map((e) => e.p);
    const q = first(queryPairs);
    const b = first(bodyPairs);
    const param = (k: KnownParam) => b[k] ?? q[k];
    method = param('method');
    channel = param('channel');
    message = param('message');
    const callback = param('callback');
    const time = param('time');
    const timeout = param('timeout');
    const integer = (s: string) => /^[0-9]{1,16}$/.test(s) && Number(s) <= Number.MAX_SAFE_INTEGER;
    // Where a corruption lands decides whether the server reads it: every name is decoded, but only the
    // value of a known parameter's first occurrence in its part (query or body) is; the others are skipped.
    const corrupted = spec.corruption === undefined || encoded.length === 0 ? undefined : encoded[spec.corruption.target % encoded.length]!;
    const firstOfItsName = (e: (typeof encoded)[number]) => {
      const part = encoded.filter((x) => inQuery(x) === inQuery(e));
      return part.find((x) => x.p.name === e.p.name) === e;
    };
    const corruptKnown =
      corrupted !== undefined &&
      (spec.corruption!.inName ||
        corrupted.p.value === undefined ||
        ((KNOWN_PARAMS as readonly string[]).includes(corrupted.p.name) && firstOfItsName(corrupted)));
    const corruptRaw = corrupted !== undefined && (spec.corruption!.kind === 'raw-fffd' || spec.corruption!.kind === 'raw-invalid-bytes');
    // In the order the server checks; the first reason decides.
    const reasons: Array<[boolean, string]> = [
      [spec.transport === 'other-method', `HTTP method ${spec.otherMethod}: 405`],
      [spec.transport === 'bad-type', 'POST with a content type that is not a form: 415'],
      [split && bytes(bodyText) > MAX_BODY_BYTES, 'a body over --max-body-bytes: 413'],
      [corruptRaw || corruptKnown, `a ${spec.corruption?.kind} in a parameter the server decodes`],
      [method !== 'put' && method !== 'get' && method !== 'sync', `method ${JSON.stringify(method)}`],
      [channel === undefined || channel === '' || bytes(channel) > MAX_CHANNEL_BYTES, 'no channel, or too long'],
      [
        callback !== undefined &&
          (callback.length > MAX_CALLBACK_LENGTH || !isIdentifierPath(callback) || callback.split('.').some((s) => RESERVED_CALLBACK_SEGMENTS.has(s))),
        'a callback that is not an identifier path, or names a reserved segment',
      ],
      [method === 'put' && message === undefined, 'a put without message'],
      [method === 'put' && message !== undefined && bytes(message) > MAX_MESSAGE_BYTES, 'a message over --max-message-bytes: 413'],
      [method === 'get' && time !== undefined && !integer(time), 'time is not an integer'],
      [method === 'get' && timeout !== undefined && !integer(timeout), 'timeout is not an integer'],
    ];
    const refusal = reasons.find(([hit]) => hit);
    if (refusal) {
      verdict = 'refused';
      why = refusal[1];
    } else if (corrupted !== undefined) {
      // A bad escape in the value of an ignored parameter: never decoded, so either way is within the contract.
      verdict = 'either';
      why = `a ${spec.corruption!.kind} in a value the server skips`;
    } else {
      verdict = 'served';
      why = 'valid';
    }
  }

  const target = queryText === '' ? '/' : `/?${queryText}`;
  const httpMethod = spec.transport === 'head' ? 'HEAD' : spec.transport === 'query' ? 'GET' : spec.transport === 'other-method' ? spec.otherMethod : 'POST';
  const raw = (text: string) => {
    const parts = text.split(INVALID_MARK);
    return Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p, 'utf8')] : [Buffer.from([0xff, 0xfe]), Buffer.from(p, 'utf8')])));
  };
  const body = raw(bodyText);
  const hasBody = httpMethod === 'POST';
  let headers = `Host: fuzz\r\nConnection: close\r\n`;
  let bodyBytes = Buffer.alloc(0);
  if (hasBody) {
    headers += `Content-Type: ${spec.transport === 'bad-type' ? 'application/json' : spec.formType}\r\n`;
    if (spec.transport === 'chunked') {
      const at = body.length === 0 ? 0 : spec.chunkAt % body.length;
      const chunk = (b: Buffer) => (b.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]));
      headers += 'Transfer-Encoding: chunked\r\n';
      bodyBytes = Buffer.concat([chunk(body.subarray(0, at)), chunk(body.subarray(at)), Buffer.from('0\r\n\r\n')]);
    } else {
      headers += `Content-Length: ${body.length}\r\n`;
      bodyBytes = body;
    }
  }
  const headBytes = Buffer.concat([Buffer.from(`${httpMethod} `), raw(target), Buffer.from(` HTTP/1.1\r\n${headers}\r\n`)]);
  const data = Buffer.concat([headBytes, bodyBytes]);
  // Written in two pieces, split at a generated point: the server must not care how the bytes arrive.
  const at = spec.chunkAt % (data.length + 1);
  const storingPut = method === 'put' && httpMethod !== 'HEAD';
  const readable = channel !== undefined && channel !== '' && bytes(channel) <= MAX_CHANNEL_BYTES ? channel : undefined;
  return {
    spec,
    data,
    chunks: [data.subarray(0, at), data.subarray(at)].filter((c) => c.length > 0),
    head: httpMethod === 'HEAD',
    verdict,
    why,
    channel: readable,
    storingPut,
    message: spec.soup ? undefined : message,
  };
}

// ---- sending and checking ---------------------------------------------------------

interface Outcome {
  built: Built;
  answer: RawAnswer | undefined;
  text: string;
}

async function send(built: Built): Promise<Outcome> {
  // Connection: close: the server closes once it answered; a get waits at most --poll-timeout (1 s).
  const r = await rawExchange(srv, built.chunks, { timeoutMs: 5000, idleMs: 5000, chunkDelayMs: 5 });
  const { answers } = parseAnswers(r.data, built.head ? new Set([0]) : new Set());
  return { built, answer: answers.find((a) => a.status >= 200), text: r.text.slice(0, 300) };
}

async function readBack(channel: string): Promise<string[] | undefined> {
  const res = await srv.call({ method: 'get', channel, time: 0, timeout: 0 });
  if (res.status !== 200 || !Array.isArray(res.json?.messages)) return undefined;
  return res.json.messages as string[];
}

const show = (s: string | undefined) => (s === undefined ? 'undefined' : tapSafe(JSON.stringify(s)));

/** The first broken promise of one outcome, or undefined. */
function judge(o: Outcome, stored: string[] | undefined): string | undefined {
  const { built, answer } = o;
  const status = answer?.status;
  const what = `${built.spec.transport} ${built.why}`;
  if (status === undefined) return `${what}: no answer (${show(o.text)})`;
  if (status >= 500) return `${what}: ${status} (${show(answer!.body.toString('utf8').slice(0, 200))})`;
  if (built.verdict === 'served' && status !== 200) return `${what}: expected 200, got ${status} ${show(answer!.body.toString('utf8').slice(0, 200))}`;
  if (built.verdict === 'refused' && (status < 400 || status > 499)) return `${what}: expected a 4xx, got ${status}`;
  if (status >= 400 && !built.head && answer!.headers['content-type']?.startsWith('application/json')) {
    const body = JSON.parse(answer!.body.toString('utf8'));
    if (typeof body.error !== 'string' || !/^COMET_ERR_[A-Z_]+$/.test(body.code))
      return `${what}: a refusal without error and code: ${show(answer!.body.toString('utf8'))}`;
  }
  if (built.channel === undefined) return undefined;
  if (stored === undefined) return `${what}: the channel ${show(built.channel)} could not be read back`;
  const served = built.storingPut && status === 200;
  if (!served && stored.length !== 0) return `${what}: answered ${status}, yet stored ${show(JSON.stringify(stored))}`;
  if (served && built.message !== undefined && (stored.length !== 1 || stored[0] !== built.message)) {
    return `${what}: put ${show(built.message)} answered 200, read back ${show(JSON.stringify(stored))}`;
  }
  if (served && built.message === undefined && stored.length !== 1) return `${what}: put answered 200, read back ${stored.length} messages`;
  return undefined;
}

t.test(
  'generated requests over real sockets: never a 5xx, valid ones served, invalid ones refused, refused puts store nothing, accepted ones read back exactly',
  async (t) => {
    const runTag = uniq('fz');
    const before = await srv.metrics();
    let sent = 0;
    let servedPuts = 0;
    const verdicts: Record<Verdict, number> = { served: 0, refused: 0, either: 0 };
    const statuses = new Map<number, number>();
    const started = Date.now();
    const runs = await checkAsyncProperty(
      t,
      'batches of generated requests, sent concurrently',
      fc.asyncProperty(fc.array(specArb, { minLength: 12, maxLength: 24 }), async (specs) => {
        const built = specs.map((s) => build(s, runTag));
        const outcomes = await Promise.all(built.map(send));
        const stored = await Promise.all(outcomes.map((o) => (o.built.channel === undefined ? undefined : readBack(o.built.channel))));
        sent += outcomes.length;
        for (const [i, o] of outcomes.entries()) {
          verdicts[o.built.verdict]++;
          if (o.answer) statuses.set(o.answer.status, (statuses.get(o.answer.status) ?? 0) + 1);
          if (o.built.storingPut && o.answer?.status === 200) servedPuts++;
          const broken = judge(o, stored[i]);
          if (broken !== undefined) throw new Error(`${broken}\nrequest bytes: ${show(o.built.data.toString('latin1').slice(0, 600))}`);
        }
      }),
      { numRuns: 20, timeLimitMs: 30_000, endOnFailure: true, salt: 101 },
    );
    t.comment(
      `${sent} requests in ${runs} batches, ${Date.now() - started} ms; verdicts ${JSON.stringify(verdicts)}; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
    );
    if (runs !== undefined) {
      t.ok(sent >= 150, `a few hundred requests were sent (${sent})`);
      t.ok(verdicts.served >= 30 && verdicts.refused >= 30, 'both valid and invalid requests were generated in number', verdicts);
    }

    t.equal((await srv.request({ path: '/healthz' })).status, 200, 'the server is up');
    t.ok(srv.alive, 'the server process is alive');
    // comet_messages_in_total counts the puts served, at once; comet_stored_messages is refreshed every second.
    const accepted = (await srv.metrics()).value('comet_messages_in_total') - before.value('comet_messages_in_total');
    t.equal(accepted, servedPuts, 'the server accepted exactly the puts it answered 200 (comet_messages_in_total)');
    await sleep(1100);
    const stored = (await srv.metrics()).value('comet_stored_messages') - before.value('comet_stored_messages');
    t.equal(stored, servedPuts, 'and stored exactly one message for each, none for anything else (comet_stored_messages)');
    t.ok(await srv.waitWaiting(0, { exact: true, timeoutMs: 5000 }), 'comet_waiting_gets is back to 0');
  },
);
