/**
 * The single table of server options. The CLI parser, the environment
 * reader, `--help` and the README's options table (written by `npm run docs`,
 * checked by test/unit/docs.test.ts) are all derived from it, so an option
 * cannot exist in one place and be missing from another.
 */
import os from 'node:os';
import { shortVersion, UWS_BUILDS, UWS_CHOICES } from '../uws.js';

export interface Config {
  host: string;
  port: number;
  adminHost: string;
  adminPort: number;
  threads: number;
  maxYoungGeneration: number;
  path: string;
  logLevel: string;
  pollTimeout: number;
  maxMessageBytes: number;
  maxChannelBytes: number;
  maxBodyBytes: number;
  maxDiscardBytes: number;
  maxCallbackLength: number;
  jsonp: string;
  jsonpCallback: string;
  maxHeaderBytes: number;
  bufferSize: number;
  bufferBytes: number;
  maxAnswerMessages: number;
  maxAnswerBytes: number;
  maxWaiting: number;
  channelTtl: number;
  maxMemory: number;
  corsOrigin: string;
  auth: string;
  authSecret: string;
  authSecretFile: string;
  authPublicKey: string;
  authLeeway: number;
  authCacheSize: number;
  maxTokenBytes: number;
  shutdownTimeout: number;
  connectionsInterval: number;
  maxConnections: number;
  maxConnectionBuffer: number;
  streamHeartbeat: number;
  maxSubscriptions: number;
  websocket: string;
  maxConnectionsPerIp: number;
  rateLimit: number;
  rateBurst: number;
  trustProxy: string;
  limitTableSize: number;
  pipelining: string;
  redis: string;
  redisPrefix: string;
  redisTimeout: number;
  redisMaxPending: number;
  demo: string;
  uwsBuild: string;
  faultInjection: string;
}

interface OptionBase<K extends keyof Config> {
  key: K;
  flag: string;
  env: string;
  describe: string;
}
/** A default computed at start is shown (in --help and the README) by what it stands for. */
type IntDefault = { default: number; shownDefault?: undefined } | { default: () => number; shownDefault: string };
type IntOption<K extends keyof Config> = OptionBase<K> & {
  kind: 'int';
  min: number;
  max?: number;
} & IntDefault;
interface StringOption<K extends keyof Config> extends OptionBase<K> {
  kind: 'string';
  default: string;
  choices?: readonly string[];
  check?: (value: string) => string | undefined;
}
export type OptionSpec = { [K in keyof Config]: Config[K] extends number ? IntOption<K> : StringOption<K> }[keyof Config];

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * A redis:// or rediss:// URL that parses, with a valid port and database
 * number: anything else could never connect, and would otherwise be retried
 * forever at startup as if Redis were merely unreachable.
 */
function isRedisUrl(u: string): boolean {
  if (!/^rediss?:\/\/[^\s]+$/.test(u)) return false;
  try {
    const url = new URL(u);
    return url.port !== '0' && /^\/?\d*$/.test(url.pathname) && url.search === '' && url.hash === '';
  } catch {
    return false;
  }
}

/**
 * A --jsonp-callback pattern that compiles on its own, so that its groups are
 * balanced and the anchors protocol/jsonp.ts puts around it (`^(?:...)$`)
 * hold: `a)|(b` would otherwise compile anchored and match any prefix `a`.
 */
function isCallbackPattern(v: string): string | undefined {
  if (/[\r\n]/.test(v)) return 'must be a single-line regular expression';
  try {
    new RegExp(v);
    return undefined;
  } catch (err) {
    return `must be a valid regular expression (${(err as Error).message})`;
  }
}

/** An origin as a browser sends it: lowercase scheme and host, an optional port, no path. */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[a-z0-9.\-[\]:]+$/;

/**
 * --cors-origin: * or origins to compare exactly with the Origin header
 * (protocol/cors.ts), each a single line since it is written into a header.
 * `null` is refused: sandboxed frames and file: pages all send it.
 */
function checkCorsOrigin(value: string): string | undefined {
  if (value === '*' || value.split(',').every((o) => ORIGIN.test(o.trim()))) return undefined;
  return 'must be * or a comma-separated list of origins as browsers send them (lowercase scheme://host[:port], no path, no *, not null)';
}

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'host', flag: 'host', env: 'COMET_HOST', kind: 'string', default: '0.0.0.0', describe: 'Address to listen on.' },
  {
    key: 'port',
    flag: 'port',
    env: 'COMET_PORT',
    kind: 'int',
    min: 0,
    max: 65535,
    default: 8080,
    describe: 'TCP port; 0 picks a free port (logged in the "listening" line).',
  },
  {
    key: 'adminHost',
    flag: 'admin-host',
    env: 'COMET_ADMIN_HOST',
    kind: 'string',
    default: '',
    check: (v) => (/^[^\s]*$/.test(v) ? undefined : 'must be an address, with no spaces'),
    describe: 'Address of the admin listener (see --admin-port). Empty: the same as --host.',
  },
  {
    key: 'adminPort',
    flag: 'admin-port',
    env: 'COMET_ADMIN_PORT',
    kind: 'int',
    min: 0,
    max: 65535,
    default: 0,
    describe:
      'TCP port of a separate listener for /metrics and /healthz, which the public port then answers 404; it must differ from --port. 0: no admin listener, both are served on the public port.',
  },
  {
    key: 'threads',
    flag: 'threads',
    env: 'COMET_THREADS',
    kind: 'int',
    min: 1,
    max: 256,
    default: () => os.availableParallelism(),
    shownDefault: 'available parallelism',
    describe: 'Worker threads, each serving HTTP on the shared port and owning a shard of the channels.',
  },
  {
    key: 'maxYoungGeneration',
    flag: 'max-young-generation',
    env: 'COMET_MAX_YOUNG_GENERATION',
    kind: 'int',
    min: 3 * MiB,
    max: 1024 * MiB,
    default: 3 * MiB,
    describe:
      "Bytes each worker thread's V8 young generation (where new objects start) may grow to. V8's own limit lets it grow to about 34 MiB per thread while many connections open, and keeps it resident: some 2 KB per connection at 10,000 connections. The default, V8's smallest, cost no throughput or fan-out CPU measured here (BENCHMARKS.md, \"Streams, and memory per connection\").",
  },
  {
    key: 'path',
    flag: 'path',
    env: 'COMET_PATH',
    kind: 'string',
    default: '/',
    // uWebSockets.js routes the path: a segment starting with ':' or a '*' would be a pattern there.
    check: (v) => (v.startsWith('/') && !/[?#\s*]|\/:/.test(v) ? undefined : 'must start with / and hold no ?, #, *, spaces or segment starting with :'),
    describe: 'URL path of the protocol endpoint (matched exactly).',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'COMET_LOG_LEVEL',
    kind: 'string',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    describe: 'Log level (pino). No line is logged per request at info.',
  },
  {
    key: 'pollTimeout',
    flag: 'poll-timeout',
    env: 'COMET_POLL_TIMEOUT',
    kind: 'int',
    min: 1,
    max: 3600,
    default: 30,
    describe: 'Long-poll timeout in seconds: the longest a get waits. The timeout parameter can only shorten it.',
  },
  {
    key: 'maxMessageBytes',
    flag: 'max-message-bytes',
    env: 'COMET_MAX_MESSAGE_BYTES',
    kind: 'int',
    min: 1,
    default: 64 * KiB,
    describe: 'Largest message, in UTF-8 bytes (413 above).',
  },
  {
    key: 'maxChannelBytes',
    flag: 'max-channel-bytes',
    env: 'COMET_MAX_CHANNEL_BYTES',
    kind: 'int',
    min: 1,
    max: 64 * KiB,
    default: 256,
    describe: 'Longest channel id, in UTF-8 bytes (400 above).',
  },
  {
    key: 'maxBodyBytes',
    flag: 'max-body-bytes',
    env: 'COMET_MAX_BODY_BYTES',
    kind: 'int',
    min: 1,
    default: 256 * KiB,
    describe: 'Largest POST body, in bytes (413 above). Percent-encoding can triple a message: keep it above 3x max-message-bytes.',
  },
  {
    key: 'maxDiscardBytes',
    flag: 'max-discard-bytes',
    env: 'COMET_MAX_DISCARD_BYTES',
    kind: 'int',
    min: 0,
    max: 1 << 30,
    default: 1 * MiB,
    describe:
      'A refused POST (413, 415, 429) whose body is at most this many bytes is answered once its body was read and thrown away, and its connection then closes: a connection closed with bytes unread is reset, and a reset can destroy the answer before the client or a proxy reads it. A longer body is refused at once. 0: none is read.',
  },
  {
    key: 'maxCallbackLength',
    flag: 'max-callback-length',
    env: 'COMET_MAX_CALLBACK_LENGTH',
    kind: 'int',
    min: 1,
    max: 4096,
    default: 128,
    describe: 'Longest JSONP callback name (400 above).',
  },
  {
    key: 'jsonp',
    flag: 'jsonp',
    env: 'COMET_JSONP',
    kind: 'string',
    default: 'on',
    choices: ['on', 'off'],
    describe:
      'off: refuse every request with a callback (400 COMET_ERR_BAD_CALLBACK). A JSONP answer is readable by any page, and its callback runs in the page that loads it: turn it off where no client needs it.',
  },
  {
    key: 'jsonpCallback',
    flag: 'jsonp-callback',
    env: 'COMET_JSONP_CALLBACK',
    kind: 'string',
    default: '',
    check: isCallbackPattern,
    describe:
      'Allow pattern for JSONP callbacks: a regular expression that must match the whole callback (for example `cb_[0-9]+`). Empty: any identifier path. Reserved names (see "JSONP callbacks") are refused either way. It only ever sees callbacks within --max-callback-length: keep it free of nested quantifiers.',
  },
  {
    key: 'maxHeaderBytes',
    flag: 'max-header-bytes',
    env: 'COMET_MAX_HEADER_BYTES',
    kind: 'int',
    min: 1 * KiB,
    max: 1 * MiB,
    default: 16 * KiB,
    describe:
      'Largest request head (request line, query string and headers), in bytes (431 above; so are more than 98 header lines, a limit built into uWebSockets.js). It also bounds a message sent in the URL (JSONP puts); larger ones go in a POST body.',
  },
  {
    key: 'bufferSize',
    flag: 'buffer-size',
    env: 'COMET_BUFFER_SIZE',
    kind: 'int',
    min: 1,
    max: 1 << 24,
    default: 1000,
    describe: 'Messages kept per channel; older ones are dropped (gets from before them see "missed").',
  },
  {
    key: 'bufferBytes',
    flag: 'buffer-bytes',
    env: 'COMET_BUFFER_BYTES',
    kind: 'int',
    min: 1,
    default: 16 * MiB,
    describe: 'Size of the JSON-encoded messages kept per channel, in UTF-8 bytes; older messages are dropped past it.',
  },
  {
    key: 'maxAnswerMessages',
    flag: 'max-answer-messages',
    env: 'COMET_MAX_ANSWER_MESSAGES',
    kind: 'int',
    min: 1,
    default: 1000,
    describe: 'Most messages in one get answer; the client asks again for the rest.',
  },
  {
    key: 'maxAnswerBytes',
    flag: 'max-answer-bytes',
    env: 'COMET_MAX_ANSWER_BYTES',
    kind: 'int',
    min: 1,
    default: 1 * MiB,
    describe: 'Most bytes of JSON-encoded messages (UTF-8) in one get answer, fan-outs and reads alike (at least one message is always sent).',
  },
  {
    key: 'maxWaiting',
    flag: 'max-waiting',
    env: 'COMET_MAX_WAITING',
    kind: 'int',
    min: 1,
    default: 100_000,
    describe:
      'Most gets in progress, event streams and WebSocket subscriptions at once over all threads; past it a get or an event stream is answered 503, a subscribe refused with 503. It also bounds the channels waited on that were never written (a name each, not a stored channel, gone with their last get or stream).',
  },
  {
    key: 'channelTtl',
    flag: 'channel-ttl',
    env: 'COMET_CHANNEL_TTL',
    kind: 'int',
    min: 1,
    default: 300,
    describe: 'Seconds a channel with no new message and no waiting get is kept; then it and its messages are evicted.',
  },
  {
    key: 'maxMemory',
    flag: 'max-memory',
    env: 'COMET_MAX_MEMORY',
    kind: 'int',
    min: 1 * MiB,
    default: 256 * MiB,
    describe:
      "Budget for stored messages and channels over all threads, in bytes as allocated (each channel's storage and index, used or not, and its objects); past it the least recently written channels lose their oldest messages first and give their storage back.",
  },
  {
    key: 'corsOrigin',
    flag: 'cors-origin',
    env: 'COMET_CORS_ORIGIN',
    kind: 'string',
    default: '*',
    check: checkCorsOrigin,
    describe:
      'Origins allowed to read answers from a page (CORS). *: any (Access-Control-Allow-Origin: *). A comma-separated list of origins (https://app.example): a request whose Origin is one of them gets it echoed, with Vary: Origin; any other gets no CORS header.',
  },
  {
    key: 'auth',
    flag: 'auth',
    env: 'COMET_AUTH',
    kind: 'string',
    default: 'off',
    choices: ['off', 'put', 'all'],
    describe:
      'Access control (see "Security"): off serves every request; put requires a signed token (JWT) for put, sync and get stay open; all requires one for every method. put and all need a key: --auth-secret, --auth-secret-file or --auth-public-key.',
  },
  {
    key: 'authSecret',
    flag: 'auth-secret',
    env: 'COMET_AUTH_SECRET',
    kind: 'string',
    default: '',
    describe:
      'HS256 secrets tokens may be signed with, comma-separated, each accepted (rotation: add the new one, move publishers over, remove the old). Never logged. Prefer --auth-secret-file or the environment to a flag, which other users of the machine can read.',
  },
  {
    key: 'authSecretFile',
    flag: 'auth-secret-file',
    env: 'COMET_AUTH_SECRET_FILE',
    kind: 'string',
    default: '',
    describe: 'A file of HS256 secrets, one per line (they may hold commas), accepted beside --auth-secret. Read once at start.',
  },
  {
    key: 'authPublicKey',
    flag: 'auth-public-key',
    env: 'COMET_AUTH_PUBLIC_KEY',
    kind: 'string',
    default: '',
    describe:
      'Public keys for RS256 (RSA, 2048 bits or more) and ES256 (P-256) tokens: comma-separated paths of PEM files, or the PEM text itself; a file may hold several keys. The server never needs a private key: publishers sign with theirs.',
  },
  {
    key: 'authLeeway',
    flag: 'auth-leeway',
    env: 'COMET_AUTH_LEEWAY',
    kind: 'int',
    min: 0,
    max: 300,
    default: 0,
    describe: "Seconds of clock difference allowed between token issuers and this server when checking a token's exp and nbf.",
  },
  {
    key: 'authCacheSize',
    flag: 'auth-cache-size',
    env: 'COMET_AUTH_CACHE_SIZE',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 10_000,
    describe:
      "Verified tokens each thread remembers, so that a chain of gets re-using one token pays one signature check, not one per request; exp and nbf are checked on every use. The oldest entry makes way past it. 0: verify every request's token.",
  },
  {
    key: 'maxTokenBytes',
    flag: 'max-token-bytes',
    env: 'COMET_MAX_TOKEN_BYTES',
    kind: 'int',
    min: 64,
    max: 64 * KiB,
    default: 4 * KiB,
    describe: 'Longest token accepted (401 above), before anything of it is decoded.',
  },
  {
    key: 'shutdownTimeout',
    flag: 'shutdown-timeout',
    env: 'COMET_SHUTDOWN_TIMEOUT',
    kind: 'int',
    min: 1,
    max: 600,
    default: 10,
    describe: 'Seconds a graceful shutdown may take before the process is forced down.',
  },
  {
    key: 'maxConnections',
    flag: 'max-connections',
    env: 'COMET_MAX_CONNECTIONS',
    kind: 'int',
    min: 0,
    max: 10_000_000,
    default: 0,
    describe:
      "Open files (connections, mostly) at which every thread stops accepting connections, until they fall below 90% of it: past the process's open-file limit, accept() fails and the threads spin on it. 0: 90% of the open-file limit (read again every time, so a limit lowered with prlimit counts), minus 32 for logs, Redis and the admin listener.",
  },
  {
    key: 'maxConnectionBuffer',
    flag: 'max-connection-buffer',
    env: 'COMET_MAX_CONNECTION_BUFFER',
    kind: 'int',
    min: 0,
    max: 1 << 30,
    default: 0,
    describe:
      'Bytes of one answer a connection may leave unread; past it the connection is closed. A connection holds at most one unread answer (a request pipelined behind it closes the connection), and one that reads nothing for 10 s is closed. Streams too: an event stream or a WebSocket with more than this written and not yet read is closed as too slow (the client resumes from its last time). 0: four times --max-answer-bytes (4 MiB with its default), room for its largest answers in UTF-8.',
  },
  {
    key: 'streamHeartbeat',
    flag: 'stream-heartbeat',
    env: 'COMET_STREAM_HEARTBEAT',
    kind: 'int',
    min: 2,
    max: 30,
    default: 15,
    describe:
      'Seconds an event stream (method=events) may stay silent: a comment line is sent to one quiet this long, so that proxies keep it open. WebSocket connections are pinged at twice this (rounded up to 4 s), and closed when a ping goes unanswered.',
  },
  {
    key: 'maxSubscriptions',
    flag: 'max-subscriptions',
    env: 'COMET_MAX_SUBSCRIPTIONS',
    kind: 'int',
    min: 1,
    max: 1_000_000,
    default: 1000,
    describe:
      'Channels one WebSocket connection may subscribe to at once; a subscribe past it is refused (503, COMET_ERR_TOO_MANY_WAITING). Every subscription, like every event stream and waiting get, also holds one of --max-waiting.',
  },
  {
    key: 'websocket',
    flag: 'websocket',
    env: 'COMET_WEBSOCKET',
    kind: 'string',
    default: 'on',
    choices: ['on', 'off'],
    describe:
      'on: a WebSocket upgrade on --path opens a connection carrying subscriptions, puts and syncs as JSON frames. off: no upgrade is accepted, and one is answered as the plain GET it also is (400 without a method).',
  },
  {
    key: 'pipelining',
    flag: 'pipelining',
    env: 'COMET_PIPELINING',
    kind: 'string',
    default: 'close',
    choices: ['close', 'ordered'],
    describe:
      'HTTP pipelining behind an answer not given at once (a put or sync owned by another thread or stored in Redis, a waiting get). close: uWebSockets.js closes the connection when it reads the next request; a put still on this thread then is dropped, one already sent may be stored unanswered. ordered: such a connection is not read until its answer is written, so every request is answered in order (requests already read with it still close the connection); costs about 3 system calls per such request.',
  },
  {
    key: 'connectionsInterval',
    flag: 'connections-interval',
    env: 'COMET_CONNECTIONS_INTERVAL',
    kind: 'int',
    min: 0,
    max: 3600,
    default: 5,
    describe:
      'Seconds between counts of open connections for comet_connections (the main thread walks /proc/self/fd, about 5 µs per open file); 0 leaves the gauge out.',
  },
  {
    key: 'maxConnectionsPerIp',
    flag: 'max-connections-per-ip',
    env: 'COMET_MAX_CONNECTIONS_PER_IP',
    kind: 'int',
    min: 0,
    max: 10_000_000,
    default: 0,
    describe:
      'Most open connections from one client address (the socket peer, over all threads); a connection past it is closed as soon as it opens. Peers in --trust-proxy are not limited. Closed connections are noticed within a second. 0: no limit.',
  },
  {
    key: 'rateLimit',
    flag: 'rate-limit',
    env: 'COMET_RATE_LIMIT',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 0,
    describe:
      'Requests per second allowed from one client address, over all threads (a token bucket of --rate-burst); past it a request is answered 429 COMET_ERR_RATE_LIMITED with Retry-After. Behind a proxy, see --trust-proxy. 0: no limit.',
  },
  {
    key: 'rateBurst',
    flag: 'rate-burst',
    env: 'COMET_RATE_BURST',
    kind: 'int',
    min: 0,
    max: 1_000_000,
    default: 0,
    describe: 'Requests one client address may send at once before --rate-limit applies (the token bucket size). 0: the same as --rate-limit.',
  },
  {
    key: 'trustProxy',
    flag: 'trust-proxy',
    env: 'COMET_TRUST_PROXY',
    kind: 'string',
    default: '',
    describe:
      'Reverse proxies, as comma-separated addresses or CIDRs (10.0.0.0/8, fd00::/8): for a request from one of them, --rate-limit counts the right-most X-Forwarded-For address that is not itself in the list, and their own connections are not limited by --max-connections-per-ip. Empty: X-Forwarded-For is never read.',
  },
  {
    key: 'limitTableSize',
    flag: 'limit-table-size',
    env: 'COMET_LIMIT_TABLE_SIZE',
    kind: 'int',
    min: 64,
    max: 1 << 24,
    default: 65_536,
    describe:
      'Client addresses the per-client limits track at once (40 bytes each, shared by all threads; an address with no connection and a full bucket makes way for a new one). An address for which none is free is let through untracked (comet_limit_untracked_total). Only allocated with --rate-limit or --max-connections-per-ip.',
  },
  {
    key: 'redis',
    flag: 'redis',
    env: 'COMET_REDIS',
    kind: 'string',
    default: '',
    check: (v) =>
      v === '' || v.split(',').every((u) => isRedisUrl(u.trim()))
        ? undefined
        : 'must be redis:// or rediss:// URLs (host, port 1-65535, database number), comma-separated',
    describe:
      'Cluster mode: keep channels in Redis at this URL (a Redis Cluster is detected; several seed URLs may be given, comma-separated), so that any number of nodes serve the same channels. Empty: the in-memory engine.',
  },
  {
    key: 'redisPrefix',
    flag: 'redis-prefix',
    env: 'COMET_REDIS_PREFIX',
    kind: 'string',
    default: 'comet:',
    check: (v) => (/^[^{}\s]*$/.test(v) ? undefined : 'must hold no braces or spaces'),
    describe: 'Prefix of every Redis key and pub/sub channel name of this deployment.',
  },
  {
    key: 'redisTimeout',
    flag: 'redis-timeout',
    env: 'COMET_REDIS_TIMEOUT',
    kind: 'int',
    min: 10,
    max: 600_000,
    default: 2000,
    describe: 'Milliseconds a Redis command or connection attempt may take before the request is answered 503.',
  },
  {
    key: 'redisMaxPending',
    flag: 'redis-max-pending',
    env: 'COMET_REDIS_MAX_PENDING',
    kind: 'int',
    min: 1,
    default: 10_000,
    describe: 'Most Redis commands in flight per thread; past it requests are answered 503 at once, bounding memory when Redis is slow.',
  },
  {
    key: 'demo',
    flag: 'demo',
    env: 'COMET_DEMO',
    kind: 'string',
    default: 'off',
    choices: ['on', 'off'],
    describe: 'on: serve the live chat demo (built on the client library) under /demo/.',
  },
  {
    key: 'uwsBuild',
    flag: 'uws-build',
    env: 'COMET_UWS_BUILD',
    kind: 'string',
    default: 'auto',
    choices: UWS_CHOICES,
    describe: `uWebSockets.js build to run on: auto takes the newest that loads on this Node.js and C library (${UWS_BUILDS.map(
      (b) => `${shortVersion(b)}: Node ${Object.values(b.node).join(', ')} with glibc ${b.glibc}+`,
    ).join('; ')}).`,
  },
  {
    key: 'faultInjection',
    flag: 'fault-injection',
    env: 'COMET_FAULT_INJECTION',
    kind: 'string',
    default: 'off',
    choices: ['on', 'off'],
    describe: 'Tests only. on: POST /_fault/crash?thread=N makes worker thread N throw, to exercise the crash policy.',
  },
];

/** --max-connection-buffer in bytes: 0 stands for four answers of --max-answer-bytes. */
export function connectionBufferLimit(config: Pick<Config, 'maxConnectionBuffer' | 'maxAnswerBytes'>): number {
  return config.maxConnectionBuffer || 4 * config.maxAnswerBytes;
}

/** The default as --help and the README show it. */
export function shownDefault(option: OptionSpec): string {
  if (option.kind === 'int') return option.shownDefault ?? String(option.default);
  return option.default === '' ? '(empty)' : option.default;
}
