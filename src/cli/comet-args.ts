/**
 * The `comet` command line: turns argv and the environment into one command,
 * or a UsageError naming exactly what is wrong (exit code 2), checked before
 * anything is sent so that a typo never reaches the server.
 */
import { parseArgs } from 'node:util';

export const DEFAULT_URL = 'http://127.0.0.1:8080/';

export class UsageError extends Error {}

export type CometCommand =
  | { name: 'help' }
  | { name: 'pub'; url: string; channel: string; message: string }
  | { name: 'sync'; url: string; channel: string }
  | { name: 'sub'; url: string; channel: string; json: boolean; time: number | undefined };

/** Positional arguments after the command name, per command. */
const POSITIONALS = { pub: ['CHANNEL', 'MESSAGE'], sub: ['CHANNEL'], sync: ['CHANNEL'] } as const;

export function parseCometArgs(argv: readonly string[], env: NodeJS.ProcessEnv): CometCommand {
  let values: { url?: string; json?: boolean; time?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: { url: { type: 'string' }, json: { type: 'boolean' }, time: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { name: 'help' };

  const [name, ...args] = positionals;
  if (name === undefined) throw new UsageError('missing command: pub, sub or sync');
  if (!Object.hasOwn(POSITIONALS, name)) throw new UsageError(`unknown command ${JSON.stringify(name)}: expected pub, sub or sync`);
  const command = name as keyof typeof POSITIONALS;
  const expected = POSITIONALS[command];
  if (args.length < expected.length)
    throw new UsageError(`${command}: missing ${expected.slice(args.length).join(' and ')} (usage: comet ${command} ${expected.join(' ')})`);
  if (args.length > expected.length) {
    throw new UsageError(
      `${command}: unexpected argument ${JSON.stringify(args[expected.length])} (usage: comet ${command} ${expected.join(' ')}; quote a message with spaces)`,
    );
  }
  if (command !== 'sub') {
    if (values.json) throw new UsageError(`--json only applies to sub`);
    if (values.time !== undefined) throw new UsageError(`--time only applies to sub`);
  }

  const url = checkUrl(values.url, env.COMET_URL);
  const channel = args[0]!;
  if (command === 'pub') return { name: command, url, channel, message: args[1]! };
  if (command === 'sync') return { name: command, url, channel };
  return { name: command, url, channel, json: values.json === true, time: checkTime(values.time) };
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

Options:
  --url URL     The server's protocol endpoint (env COMET_URL; default ${DEFAULT_URL}).
                --url wins over COMET_URL.
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
  -h, --help    Show this help and exit.

Plain sub prints each message followed by a newline, as received: a message that
contains newlines is printed as is and cannot be told apart from several
messages, so use --json for such data. Gaps ("missed") are reported on stderr.
Errors go to stderr; sub retries the ones that may pass (network, 5xx) by itself.
A MESSAGE starting with "-" goes after "--": comet pub news -- -1

Exit status: 0 success (sub: stopped by a signal), 1 the server refused the
request (4xx, its message on stderr) or could not be reached, 2 bad usage.
`;
}
