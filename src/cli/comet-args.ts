/**
 * The `comet` command line: turns argv and the environment into one command,
 * or a UsageError naming exactly what is wrong (exit code 2), checked before
 * anything is sent so that a typo never reaches the server.
 */
import { parseArgs } from 'node:util';
import { AUTH_METHODS, type AuthMethod } from '../auth/grant.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080/';

export class UsageError extends Error {}

export type CometCommand =
  | { name: 'help' }
  | { name: 'pub'; url: string; token: string | undefined; channel: string; message: string }
  | { name: 'sync'; url: string; token: string | undefined; channel: string }
  | { name: 'sub'; url: string; token: string | undefined; channel: string; json: boolean; time: number | undefined; transport: SubTransport }
  | { name: 'token'; secret: string; channels: string[]; methods: AuthMethod[] | undefined; ttl: number };

/** How `comet sub` reaches the server (jsonp is for browsers only). */
export const SUB_TRANSPORTS = ['fetch', 'events', 'websocket'] as const;
export type SubTransport = (typeof SUB_TRANSPORTS)[number];

/** Positional arguments after the command name, per command. */
const POSITIONALS = { pub: ['CHANNEL', 'MESSAGE'], sub: ['CHANNEL'], sync: ['CHANNEL'], token: [] } as const;
type CommandName = keyof typeof POSITIONALS;

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  time: { type: 'string' },
  transport: { type: 'string' },
  secret: { type: 'string' },
  channels: { type: 'string' },
  methods: { type: 'string' },
  ttl: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The commands each option applies to: given to another, it is a usage error rather than silently ignored. */
const APPLIES: Record<Exclude<keyof typeof OPTIONS, 'help'>, readonly CommandName[]> = {
  url: ['pub', 'sub', 'sync'],
  token: ['pub', 'sub', 'sync'],
  json: ['sub'],
  time: ['sub'],
  transport: ['sub'],
  secret: ['token'],
  channels: ['token'],
  methods: ['token'],
  ttl: ['token'],
};

const USAGE = {
  pub: 'comet pub CHANNEL MESSAGE',
  sub: 'comet sub CHANNEL',
  sync: 'comet sync CHANNEL',
  token: 'comet token --secret S --channels LIST [--methods LIST] [--ttl SECONDS]',
} as const;

export const DEFAULT_TTL = 3600;

export function parseCometArgs(argv: readonly string[], env: NodeJS.ProcessEnv): CometCommand {
  let values: {
    url?: string;
    token?: string;
    json?: boolean;
    time?: string;
    transport?: string;
    secret?: string;
    channels?: string;
    methods?: string;
    ttl?: string;
    help?: boolean;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { name: 'help' };

  const [name, ...args] = positionals;
  if (name === undefined) throw new UsageError('missing command: pub, sub, sync or token');
  if (!Object.hasOwn(POSITIONALS, name)) throw new UsageError(`unknown command ${JSON.stringify(name)}: expected pub, sub, sync or token`);
  const command = name as CommandName;
  const expected: readonly string[] = POSITIONALS[command];
  if (args.length < expected.length) throw new UsageError(`${command}: missing ${expected.slice(args.length).join(' and ')} (usage: ${USAGE[command]})`);
  if (args.length > expected.length) {
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(args[expected.length])} (usage: ${USAGE[command]}; quote a message with spaces)`);
  }
  for (const [option, commands] of Object.entries(APPLIES)) {
    if (values[option as keyof typeof APPLIES] !== undefined && !commands.includes(command)) {
      throw new UsageError(`--${option} only applies to ${commands.join(', ').replace(/, ([^,]*)$/, ' and $1')}`);
    }
  }
  if (command === 'token') return checkToken(values, env);

  const url = checkUrl(values.url, env.COMET_URL);
  const token = checkClientToken(values.token, env.COMET_TOKEN);
  const channel = args[0]!;
  if (command === 'pub') return { name: command, url, token, channel, message: args[1]! };
  if (command === 'sync') return { name: command, url, token, channel };
  return { name: command, url, token, channel, json: values.json === true, time: checkTime(values.time), transport: checkTransport(values.transport) };
}

function checkTransport(raw: string | undefined): SubTransport {
  if (raw === undefined) return 'fetch';
  if (!(SUB_TRANSPORTS as readonly string[]).includes(raw))
    throw new UsageError(`--transport must be one of ${SUB_TRANSPORTS.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as SubTransport;
}

/** --token wins over COMET_TOKEN; an empty COMET_TOKEN counts as unset, as an empty COMET_URL does. */
function checkClientToken(flag: string | undefined, fromEnv: string | undefined): string | undefined {
  if (flag === '') throw new UsageError('--token must not be empty');
  return flag ?? (fromEnv || undefined);
}

/** `comet token`: the secret from --secret, else the first of the server's COMET_AUTH_SECRET list. */
function checkToken(values: { secret?: string; channels?: string; methods?: string; ttl?: string }, env: NodeJS.ProcessEnv): CometCommand {
  const secret = values.secret ?? env.COMET_AUTH_SECRET?.split(',')[0];
  if (!secret) throw new UsageError(`token: missing --secret (or COMET_AUTH_SECRET) (usage: ${USAGE.token})`);
  if (values.channels === undefined) throw new UsageError(`token: missing --channels (usage: ${USAGE.token})`);
  const channels = values.channels.split(',');
  if (channels.some((c) => c === ''))
    throw new UsageError(`--channels must be a comma-separated list of channels and prefix* patterns, got ${JSON.stringify(values.channels)}`);
  let methods: AuthMethod[] | undefined;
  if (values.methods !== undefined) {
    methods = values.methods.split(',') as AuthMethod[];
    if (!methods.every((m) => AUTH_METHODS.includes(m))) {
      throw new UsageError(`--methods must be a comma-separated list of ${AUTH_METHODS.join(', ')}, got ${JSON.stringify(values.methods)}`);
    }
  }
  const ttl = values.ttl === undefined ? DEFAULT_TTL : Number(values.ttl);
  if (values.ttl !== undefined && (!/^\d+$/.test(values.ttl) || !Number.isSafeInteger(ttl) || ttl === 0)) {
    throw new UsageError(`--ttl must be a whole number of seconds above 0, got ${JSON.stringify(values.ttl)}`);
  }
  return { name: 'token', secret, channels, methods, ttl };
}

/** --url wins over COMET_URL (an empty COMET_URL counts as unset), which wins over the default. */
function checkUrl(flag: string | undefined, fromEnv: string | undefined): string {
  const [raw, source] = flag !== undefined ? [flag, '--url'] : fromEnv ? [fromEnv, 'COMET_URL'] : [DEFAULT_URL, 'the default URL'];
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${source} is not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${source} must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  // The client appends the protocol's parameters itself.
  if (url.search || url.hash) throw new UsageError(`${source} must not carry a query string or fragment, got ${JSON.stringify(raw)}`);
  return url.href;
}

function checkTime(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value))
    throw new UsageError(`--time must be a time the server gave (a whole number), got ${JSON.stringify(raw)}`);
  return value;
}

export function cometHelpText(): string {
  return `Usage:
  comet pub CHANNEL MESSAGE   Publish MESSAGE on CHANNEL; prints the message's time.
  comet sub CHANNEL           Print CHANNEL's messages as they arrive, until Ctrl-C or SIGTERM.
  comet sync CHANNEL          Print CHANNEL's current time.
  comet token --secret S --channels LIST [--methods LIST] [--ttl SECONDS]
                              Print a token (HS256 JWT) for a server with access
                              control on, for development.

Options:
  --url URL     The server's protocol endpoint (env COMET_URL; default ${DEFAULT_URL}).
                --url wins over COMET_URL.
  --token JWT   pub, sub, sync: the token for a server with access control on
                (env COMET_TOKEN; --token wins), sent as Authorization: Bearer
                (with --transport websocket: in every request frame).
  --json        sub: print one JSON object per line instead of the bare message:
                  {"channel":"news","time":T,"message":"hello"}
                "time" is that of the server's answer that carried the message (the
                last message's time; messages of one answer share it): to resume,
                pass the time of the last line printed to --time. A line also has
                "missed":true when the server could not vouch for the messages
                before it (dropped or lost); a gap with no message to print is a
                line without "message".
  --time T      sub: start after time T (a time printed by pub, sync or sub --json)
                instead of from now.
  --transport T sub: how to receive the messages (default fetch):
                  fetch      long-polling gets, one after another
                  events     one server-sent event stream
                  websocket  one WebSocket
                Each resumes from the last message printed after a failure.
  -h, --help    Show this help and exit.

Options of token:
  --secret S        One of the server's --auth-secret entries (default: the first
                    entry of COMET_AUTH_SECRET).
  --channels LIST   Comma-separated channels and prefix* patterns it covers
                    ("*": every channel), e.g. news,room:*
  --methods LIST    Comma-separated methods it allows among put, get and sync
                    (default: all three).
  --ttl SECONDS     How long it is valid (default ${DEFAULT_TTL}).

Plain sub prints each message followed by a newline, as received: a message that
contains newlines is printed as is and cannot be told apart from several
messages, so use --json for such data. Gaps ("missed") are reported on stderr.
Errors go to stderr; sub retries the ones that may pass (network, 5xx) by itself.
A MESSAGE starting with "-" goes after "--": comet pub news -- -1

Exit status: 0 success (sub: stopped by a signal), 1 the server refused the
request (4xx, its message on stderr) or could not be reached, 2 bad usage.
`;
}
