/**
 * The `comet` command-line tool (dist/cli/comet.js) run as child processes
 * against a real server: pub, sync, sub (plain, --json, --time, --transport), the URL from
 * --url and COMET_URL, usage errors, refusals, a server that is down, and a
 * server with access control on (--token, COMET_TOKEN, comet token).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { mintToken } from '../src/cli/token.js';
import { freePort } from './helpers/redis.js';
import { childEnv, ROOT, startServer, waitFor, within, type CometServer, type ExitInfo } from './helpers/server.js';

const COMET = path.join(ROOT, 'dist', 'cli', 'comet.js');
const live = new Set<ChildProcess>();
t.teardown(() => {
  for (const p of live) p.kill('SIGKILL');
});

interface CometRun extends ExitInfo {
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `comet ...args` until it exits (killed after timeoutMs). */
function runComet(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CometRun> {
  const sub = spawnComet(args, opts.env);
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      sub.proc.kill('SIGKILL');
    }, opts.timeoutMs ?? 10000);
    void sub.exited.then((e) => {
      clearTimeout(timer);
      resolve({ ...e, stdout: sub.stdout, stderr: sub.stderr, timedOut });
    });
  });
}

/** A `comet` process left running (sub): its output so far, and its exit. */
function spawnComet(args: string[], env: Record<string, string | undefined> = {}) {
  if (!existsSync(COMET)) throw new Error(`${COMET} does not exist: run \`npm run build\` first`);
  const proc = spawn(process.execPath, [COMET, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  const out = { proc, stdout: '', stderr: '', exited: undefined as unknown as Promise<ExitInfo> };
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (out.stdout += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (out.stderr += c));
  // 'close', not 'exit': all output has been read by then.
  out.exited = new Promise((resolve) =>
    proc.on('close', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    }),
  );
  return out;
}
type Running = ReturnType<typeof spawnComet>;

/** Waits (bounded) for `n` lines on stdout, and returns them. */
async function lines(sub: Running, n: number, timeoutMs = 5000): Promise<string[]> {
  const got = () => sub.stdout.split('\n').slice(0, -1);
  await waitFor(() => got().length >= n, {
    timeoutMs,
    what: `${n} lines from comet sub; stdout ${JSON.stringify(sub.stdout)}, stderr ${JSON.stringify(sub.stderr)}`,
  });
  return got();
}

/** Sends a signal and expects a clean exit within 5 s. */
async function stopped(t: Test, sub: Running, signal: NodeJS.Signals): Promise<void> {
  sub.proc.kill(signal);
  const exit = await within(sub.exited, 5000, `comet sub exit after ${signal}`);
  t.strictSame(exit, { code: 0, signal: null }, `${signal}: exit code 0`, { stderr: sub.stderr });
}

const MAX_CHANNEL_BYTES = 24;
let srv: CometServer;
t.before(async () => {
  srv = await startServer({ args: ['--max-channel-bytes', String(MAX_CHANNEL_BYTES)] });
});
const url = () => `${srv.url}/`;

/**
 * Starts `comet sub` and waits until its get waits on the server: messages put
 * after that are after its sync. The previous test's subscriber must be gone
 * first, or its get would be taken for this one's.
 */
async function subscribed(t: Test, args: string[]): Promise<Running> {
  t.ok(await srv.waitWaiting(0, { exact: true, timeoutMs: 5000 }), 'no get waiting before');
  const sub = spawnComet([...args, '--url', url()]);
  t.ok(await srv.waitWaiting(1, { timeoutMs: 5000 }), 'the subscription is waiting', { stderr: sub.stderr });
  return sub;
}

t.test('pub prints the time, and sync then agrees', async (t) => {
  const pub = await runComet(['pub', 'cli-pub', 'hello world', '--url', url()]);
  t.equal(pub.code, 0, 'pub exits 0', { pub });
  t.match(pub.stdout, /^\d+\n$/, 'pub prints one time');
  const sync = await runComet(['sync', 'cli-pub', '--url', url()]);
  t.equal(sync.code, 0, 'sync exits 0', { sync });
  t.equal(sync.stdout, pub.stdout, 'sync prints the time pub printed');
  const stored = await srv.get('cli-pub', { time: 0, timeout: 0 });
  t.strictSame(stored.messages, ['hello world'], 'the server holds the message');
  const empty = await runComet(['pub', 'cli-pub', '', '--url', url()]);
  t.equal(empty.code, 0, 'an empty message is a message', { empty });
  const dash = await runComet(['pub', '--url', url(), 'cli-pub', '--', '-1']);
  t.equal(dash.code, 0, 'a message starting with "-" after --', { dash });
  t.strictSame((await srv.get('cli-pub', { time: Number(pub.stdout), timeout: 0 })).messages, ['', '-1']);
});

t.test('sub prints the messages published after it started, in order, until SIGINT', async (t) => {
  const sub = await subscribed(t, ['sub', 'cli-sub']);
  const sent = ['one', 'two words', 'drei ü ✓', 'four'];
  for (const m of sent) await srv.put('cli-sub', m);
  t.strictSame(await lines(sub, sent.length), sent, 'every message, once, in order');
  await stopped(t, sub, 'SIGINT');
  t.equal(sub.stderr, '', 'nothing on stderr');
});

t.test('sub --json: one JSON object per message, newlines and all', async (t) => {
  const sub = await subscribed(t, ['sub', 'cli-json', '--json']);
  const sent = ['a', 'two\nlines', '{"not":"parsed"}'];
  const times: number[] = [];
  for (const m of sent) times.push(await srv.put('cli-json', m));
  const got = (await lines(sub, sent.length)).map((l) => JSON.parse(l));
  t.strictSame(
    got.map((j) => j.message),
    sent,
    'the messages, as sent',
  );
  for (const j of got) {
    t.equal(j.channel, 'cli-json', 'channel');
    t.ok(Number.isSafeInteger(j.time) && j.time >= times[0]! && j.time <= times.at(-1)!, "time: one of the answers' times", { j, times });
    t.notOk('missed' in j, 'not missed');
  }
  t.equal(got.at(-1).time, times.at(-1), "the last line carries the last message's time");
  await stopped(t, sub, 'SIGTERM');
});

t.test('sub --time T prints exactly the messages after T', async (t) => {
  const times: number[] = [];
  for (const m of ['first', 'second', 'third']) {
    const pub = await runComet(['pub', 'cli-time', m, '--url', url()]);
    t.equal(pub.code, 0, `pub ${m}`, { pub });
    times.push(Number(pub.stdout));
  }
  const sub = spawnComet(['sub', 'cli-time', '--json', '--time', String(times[0]), '--url', url()]);
  const got = (await lines(sub, 2)).map((l) => JSON.parse(l));
  t.strictSame(
    got.map((j) => j.message),
    ['second', 'third'],
    'the two messages after the first',
  );
  t.equal(got[1].time, times[2], "ending at the third's time");
  t.notOk(
    got.some((j) => j.missed),
    'nothing missed',
  );
  await srv.put('cli-time', 'fourth');
  t.strictSame(
    (await lines(sub, 3)).map((l) => JSON.parse(l).message),
    ['second', 'third', 'fourth'],
    'then what comes next',
  );
  await stopped(t, sub, 'SIGINT');
});

t.test('sub --time 0 reports the gap: "missed" in --json, a note on stderr in plain mode', async (t) => {
  await srv.put('cli-missed', 'old');
  const json = spawnComet(['sub', 'cli-missed', '--json', '--time', '0', '--url', url()]);
  const [line] = await lines(json, 1);
  t.match(JSON.parse(line!), { channel: 'cli-missed', message: 'old', missed: true }, 'missed on the first line');
  await stopped(t, json, 'SIGINT');
  const plain = spawnComet(['sub', 'cli-missed', '--time', '0', '--url', url()]);
  t.strictSame(await lines(plain, 1), ['old'], 'the message on stdout');
  await waitFor(() => plain.stderr.includes('lost'), { timeoutMs: 5000, what: 'the missed note' });
  await stopped(t, plain, 'SIGINT');
});

t.test('sub --transport events and websocket: the same lines as over fetch, a refusal exits 1', async (t) => {
  const long = 'x'.repeat(MAX_CHANNEL_BYTES + 1);
  for (const transport of ['events', 'websocket']) {
    const channel = `cli-${transport}`;
    // From a given time: a stream's first message is then whatever was put after it, however long the connection took.
    const from = await srv.sync(channel);
    const sub = spawnComet(['sub', channel, '--json', '--transport', transport, '--time', String(from), '--url', url()]);
    const sent = ['one', 'two\nlines', 'drei ü ✓'];
    const times: number[] = [];
    for (const m of sent) times.push(await srv.put(channel, m));
    const got = (await lines(sub, sent.length)).map((l) => JSON.parse(l));
    t.strictSame(
      got.map((j) => j.message),
      sent,
      `${transport}: every message once, in order`,
    );
    t.equal(got.at(-1).time, times.at(-1), `${transport}: the last line carries the last message's time`);
    await stopped(t, sub, 'SIGINT');
    t.equal(sub.stderr, '', `${transport}: nothing on stderr`);

    const refused = await runComet(['sub', long, '--transport', transport, '--time', '1', '--url', url()]);
    t.equal(refused.code, 1, `${transport}: a refused subscription exits 1`, { refused });
    t.match(refused.stderr, /the server refused the request: .*COMET_ERR_BAD_CHANNEL/, `${transport}: saying why`);
  }
});

t.test('COMET_URL names the server; --url wins over it', async (t) => {
  const fromEnv = await runComet(['sync', 'cli-env'], { env: { COMET_URL: url() } });
  t.equal(fromEnv.code, 0, 'COMET_URL alone works', { fromEnv });
  t.match(fromEnv.stdout, /^\d+\n$/);
  const dead = `http://127.0.0.1:${await freePort()}/`;
  const flagWins = await runComet(['sync', 'cli-env', '--url', url()], { env: { COMET_URL: dead } });
  t.equal(flagWins.code, 0, '--url wins over a dead COMET_URL', { flagWins });
  const envUsed = await runComet(['sync', 'cli-env'], { env: { COMET_URL: dead } });
  t.equal(envUsed.code, 1, 'a dead COMET_URL is used (and fails)', { envUsed });
  t.match(envUsed.stderr, dead, 'naming it');
});

t.test('bad usage exits 2 naming what is wrong; --help exits 0', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /missing command/],
    [['token', '--channels', 'a'], /missing --secret/],
    [['token', '--secret', 's'], /missing --channels/],
    [['token', '--secret', 's', '--channels', 'a', '--methods', 'post'], /--methods must be/],
    [['token', '--secret', 's', '--channels', 'a', '--ttl', 'soon'], /--ttl must be/],
    [['sub'], /missing CHANNEL/],
    [['pub', 'ch'], /missing MESSAGE/],
    [['pub', 'ch', 'a', 'b'], /unexpected argument "b"/],
    [['frob', 'ch'], /unknown command "frob"/],
    [['sub', 'ch', '--bogus'], /--bogus/],
    [['sub', 'ch', '--time', 'soon'], /--time must be/],
    [['sync', 'ch', '--json'], /--json only applies to sub/],
    [['sync', 'ch', '--url', 'ftp://x/'], /--url must be an http/],
    [['sync', 'ch', '--url'], /--url/],
  ];
  for (const [args, message] of cases) {
    const r = await runComet(args, { env: { COMET_URL: url() } });
    t.equal(r.code, 2, `comet ${args.join(' ')}: exit 2`, { r });
    t.match(r.stderr, message, `comet ${args.join(' ')}: says so`);
    t.equal(r.stdout, '', 'nothing on stdout');
  }
  const badEnv = await runComet(['sync', 'ch'], { env: { COMET_URL: 'not a url' } });
  t.equal(badEnv.code, 2, 'a bad COMET_URL: exit 2', { badEnv });
  t.match(badEnv.stderr, /COMET_URL/);
  const help = await runComet(['--help']);
  t.equal(help.code, 0, '--help exits 0');
  t.match(help.stdout, /comet pub CHANNEL MESSAGE[\s\S]*COMET_URL[\s\S]*--json[\s\S]*newlines/, 'the usage, the URL, and the advice on newlines');
  t.match(
    help.stdout,
    /comet token --secret S --channels LIST[\s\S]*--token JWT[\s\S]*COMET_TOKEN[\s\S]*COMET_AUTH_SECRET/,
    'token, --token and their variables',
  );
});

t.test("a refusal (4xx) exits 1 with the server's message", async (t) => {
  const long = 'x'.repeat(MAX_CHANNEL_BYTES + 1);
  const said = (await srv.call({ method: 'sync', channel: long })).json?.error as string;
  t.ok(said, 'the server refuses the channel', { said });
  for (const args of [
    ['pub', long, 'm'],
    ['sync', long],
    ['sub', long],
  ]) {
    const r = await runComet([...args, '--url', url()]);
    t.equal(r.code, 1, `${args[0]}: exit 1`, { r });
    t.ok(r.stderr.includes(said), `${args[0]}: the server's message on stderr`, { stderr: r.stderr });
  }
});

t.test('a server that is down: pub fails at once; sub retries and recovers when it comes up', async (t) => {
  const port = await freePort();
  const down = `http://127.0.0.1:${port}/`;
  const pub = await runComet(['pub', 'cli-down', 'm', '--url', down]);
  t.equal(pub.code, 1, 'pub exits 1', { pub });
  t.match(pub.stderr, `no answer from ${down}`, 'with a network error naming the URL');

  const sub = spawnComet(['sub', 'cli-down', '--url', down]);
  await waitFor(() => sub.stderr.includes('retrying'), { timeoutMs: 5000, what: 'a retry reported on stderr' });
  t.match(sub.stderr, `no answer from ${down}`, 'the failure reported');
  const up = await startServer({ t, args: ['--port', String(port)] });
  // The subscription syncs first once the server is up; a message put before that would not be "after it started".
  t.ok(await up.waitWaiting(1, { timeoutMs: 10000 }), 'the subscription reached the server');
  await up.put('cli-down', 'back');
  t.strictSame(await lines(sub, 1), ['back'], 'the message published once the server was up');
  await stopped(t, sub, 'SIGINT');
});

t.test('against a server with --auth all: --token and COMET_TOKEN, and comet token minting what it accepts', async (t) => {
  const secret = 'cli-token-secret';
  const auth = await startServer({ t, args: ['--auth', 'all', '--auth-secret', `${secret},older-secret`] });
  const authUrl = `${auth.url}/`;
  const minted = await runComet(['token', '--secret', secret, '--channels', 'cli-auth,room:*', '--methods', 'put,sync', '--ttl', '600']);
  t.equal(minted.code, 0, 'comet token exits 0', { minted });
  t.match(minted.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'one compact JWT on a line');
  const jwt = minted.stdout.trim();
  const [header, claims, signature] = jwt.split('.') as [string, string, string];
  const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  t.strictSame(decode(header), { alg: 'HS256', typ: 'JWT' }, 'header');
  const { exp, ...rest } = decode(claims);
  t.strictSame(rest, { channels: ['cli-auth', 'room:*'], methods: ['put', 'sync'] }, 'channels and methods as given');
  t.ok(Math.abs(exp - (Date.now() / 1000 + 600)) < 5, 'exp: now + ttl', { exp });
  t.equal(signature, createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url'), 'signed with the secret (HS256)');

  const denied = await runComet(['pub', 'cli-auth', 'no token', '--url', authUrl]);
  t.equal(denied.code, 1, 'no token: exit 1', { denied });
  t.match(denied.stderr, /COMET_ERR_UNAUTHORIZED[\s\S]*--token or COMET_TOKEN/, 'the 401, and how to give a token');

  const pub = await runComet(['pub', 'cli-auth', 'with --token', '--url', authUrl, '--token', jwt]);
  t.equal(pub.code, 0, 'pub --token: accepted', { pub });
  const fromEnv = await runComet(['pub', 'room:1', 'with COMET_TOKEN', '--url', authUrl], { env: { COMET_TOKEN: jwt } });
  t.equal(fromEnv.code, 0, 'COMET_TOKEN: accepted, on a room:* channel', { fromEnv });
  const flagWins = await runComet(['sync', 'cli-auth', '--url', authUrl, '--token', jwt], { env: { COMET_TOKEN: 'not.a.token' } });
  t.equal(flagWins.code, 0, '--token wins over COMET_TOKEN', { flagWins });
  const emptyEnv = await runComet(['sync', 'cli-auth', '--url', authUrl], { env: { COMET_TOKEN: '' } });
  t.equal(emptyEnv.code, 1, 'an empty COMET_TOKEN is no token', { emptyEnv });
  t.match(emptyEnv.stderr, /COMET_ERR_UNAUTHORIZED/);
  const forbidden = await runComet(['sync', 'elsewhere', '--url', authUrl, '--token', jwt]);
  t.equal(forbidden.code, 1, 'a channel the token does not cover: exit 1', { forbidden });
  t.match(forbidden.stderr, /COMET_ERR_FORBIDDEN/);
  const reader = mintToken({ secret, channels: ['*'], ttl: 60 });
  t.strictSame((await auth.get('cli-auth', { time: 0, timeout: 0, token: reader })).messages, ['with --token'], 'the put was stored');

  // The default secret: the first of COMET_AUTH_SECRET's list, as the server has it.
  const fromSecretEnv = await runComet(['token', '--channels', 'cli-sub'], { env: { COMET_AUTH_SECRET: `${secret},older-secret` } });
  t.equal(fromSecretEnv.code, 0, 'comet token with COMET_AUTH_SECRET', { fromSecretEnv });
  const subToken = fromSecretEnv.stdout.trim();
  t.notOk('methods' in decode(subToken.split('.')[1]!), 'no --methods: no methods claim');
  const sub = spawnComet(['sub', 'cli-sub', '--url', authUrl], { COMET_TOKEN: subToken });
  t.ok(await auth.waitWaiting(1, { timeoutMs: 5000 }), 'sub with COMET_TOKEN is waiting', { stderr: sub.stderr });
  await auth.put('cli-sub', 'for the subscriber', { token: reader });
  t.strictSame(await lines(sub, 1), ['for the subscriber'], 'sub receives with its token');
  await stopped(t, sub, 'SIGINT');
  t.equal(sub.stderr, '', 'no error on the way');
});
