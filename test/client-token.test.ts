/**
 * The client library's token (createClient({ token })) against the real
 * server with access control on (--auth all), over real sockets, with the
 * fetch transport (JSONP runs in the browser test): a string token, a token
 * function refreshed after a 401 (once per refusal, shared by concurrent
 * requests, and under a running subscription without losing a message), and
 * refusals that stay final (a second 401, a string token's 401, any 403).
 * Tokens are minted by the comet CLI's mintToken; globalThis.fetch is wrapped
 * to see what each request carried.
 */
import t from 'tap';
import type { Test } from 'tap';
import type { AuthMethod } from '../src/auth/grant.js';
import { mintToken } from '../src/cli/token.js';
import { CometRequestError, createClient, type CometClientError, type ClientOptions } from '../src/client/index.js';
import { recordFetch } from './helpers/client.js';
import { startServer, stillPending, waitFor, within, type CometServer } from './helpers/server.js';

const SECRET = 'client-token-test-secret';

/** A token valid for an hour (or expired `ttl` < 0 seconds ago), signed with SECRET unless told. */
const token = (channels: string[], { methods, ttl = 3600, secret = SECRET }: { methods?: AuthMethod[]; ttl?: number; secret?: string } = {}) =>
  mintToken({ secret, channels, methods, ttl });
const EXPIRED = () => token(['*'], { ttl: -10 });
const WRONG_SECRET = () => token(['*'], { secret: 'not-the-server-secret' });

/** A token function returning `tokens` in turn (the last one from then on), counting its calls. */
function tokens(...list: Array<() => string>): { fn: () => Promise<string>; calls: number } {
  const counter = {
    calls: 0,
    fn: async () => list[Math.min(counter.calls++, list.length - 1)]!(),
  };
  return counter;
}

async function refusal(t: Test, promise: Promise<unknown>, status: number, code: string, what: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof CometRequestError, `${what}: a CometRequestError`, { err });
  t.match(err, { status, code, retryable: false }, `${what}: ${status} ${code}, not retryable`);
}

let srv: CometServer;
let url: string;
t.before(async () => {
  srv = await startServer({ threads: 2, args: ['--auth', 'all', '--auth-secret', `other-secret,${SECRET}`] });
  url = `${srv.url}/`;
});
const client = (tok: ClientOptions['token']) => createClient({ url, token: tok, pollTimeout: 1 });

t.test('a string token: publish, sync and a subscription over fetch, as Authorization: Bearer', async (t) => {
  const sent = recordFetch(t);
  const tok = token(['tok-string']);
  const c = client(tok);
  await refusal(t, createClient({ url }).publish('tok-string', 'x'), 401, 'COMET_ERR_UNAUTHORIZED', 'without a token');
  t.equal(sent[0]?.authorization, null, 'a client without a token sends no Authorization header');

  const got: string[] = [];
  const sub = c.subscribe('tok-string', (messages) => got.push(...messages), { onError: (err) => t.fail(`subscription error: ${err.message}`) });
  t.teardown(() => sub.stop());
  t.ok(await srv.waitWaiting(1, { timeoutMs: 5000 }), 'the subscription is waiting');
  const first = await c.publish('tok-string', 'one');
  t.ok(Number.isSafeInteger(first), 'publish answers a time');
  await c.publish('tok-string', 'two');
  t.ok((await c.sync('tok-string')) >= first, 'sync answers');
  await waitFor(() => got.length >= 2, { timeoutMs: 5000, what: 'both messages delivered' });
  t.strictSame(got, ['one', 'two'], 'the subscription got both');
  sub.stop();
  await within(sub.done, 2000, 'the subscription ends');

  const withToken = sent.slice(1);
  t.ok(withToken.length >= 4, `sync, get, puts sent (${withToken.length})`);
  t.ok(
    withToken.every((s) => s.authorization === `Bearer ${tok}`),
    'every request carried the token as a bearer token',
  );
  t.notOk(
    withToken.some((s) => new URL(s.url).searchParams.has('token')),
    'and never in the URL',
  );
});

t.test("a string token's 401 is final: one request, no retry", async (t) => {
  const sent = recordFetch(t);
  await refusal(t, client(EXPIRED()).publish('tok-final', 'x'), 401, 'COMET_ERR_UNAUTHORIZED', 'an expired string token');
  t.equal(sent.length, 1, 'one request');
  const errors: CometClientError[] = [];
  const sub = client(WRONG_SECRET()).subscribe('tok-final', () => t.fail('no messages'), { onError: (err) => errors.push(err) });
  await refusal(t, within(sub.done, 5000, 'the refused subscription ends'), 401, 'COMET_ERR_UNAUTHORIZED', 'a subscription with a bad string token');
  t.equal(errors.length, 1, 'told once');
});

t.test('a token function: called before the first request, kept, called again after a 401 and the request retried once', async (t) => {
  for (const [what, bad] of [
    ['expired', EXPIRED],
    ['signed with a wrong secret', WRONG_SECRET],
  ] as const) {
    const source = tokens(bad, () => token(['tok-refresh']));
    const c = client(source.fn);
    t.equal(source.calls, 0, `${what}: not called before a request needs it`);
    const time = await c.publish('tok-refresh', `after ${what}`);
    t.equal(source.calls, 2, `${what}: called twice: the first token, then after its 401`);
    t.strictSame(
      (await srv.get('tok-refresh', { time: time - 1, timeout: 0, token: token(['*']) })).messages,
      [`after ${what}`],
      `${what}: the put was stored`,
    );
    await c.publish('tok-refresh', 'again');
    await c.sync('tok-refresh');
    t.equal(source.calls, 2, `${what}: the good token is kept for later requests`);
  }
});

t.test('a second 401 in a row is the refusal', async (t) => {
  const sent = recordFetch(t);
  const source = tokens(EXPIRED, WRONG_SECRET);
  await refusal(t, client(source.fn).publish('tok-twice', 'x'), 401, 'COMET_ERR_UNAUTHORIZED', 'two bad tokens');
  t.equal(source.calls, 2, 'called twice');
  t.equal(sent.length, 2, 'two requests: the first, and one retry');
});

t.test('concurrent requests refused together share one refresh', async (t) => {
  const source = tokens(EXPIRED, () => token(['tok-shared']));
  const c = client(source.fn);
  const times = await Promise.all([c.publish('tok-shared', 'a'), c.publish('tok-shared', 'b'), c.sync('tok-shared')]);
  t.ok(times.every(Number.isSafeInteger), 'all three succeed');
  t.equal(source.calls, 2, 'the function was called once for all three, and once for their 401s');
});

t.test('a token function that fails: the request fails with its error, and the next one calls it again', async (t) => {
  let calls = 0;
  const c = client(async () => {
    if (calls++ === 0) throw new Error('the issuer is down');
    return token(['tok-fails']);
  });
  await t.rejects(c.publish('tok-fails', 'x'), /the issuer is down/);
  t.ok(Number.isSafeInteger(await c.publish('tok-fails', 'y')), 'the next request succeeds');
  t.equal(calls, 2, 'called again after the failure');
});

t.test('403 is final, with a string or a function token: no refresh, no retry', async (t) => {
  const sent = recordFetch(t);
  await refusal(t, client(token(['other'])).publish('tok-403', 'x'), 403, 'COMET_ERR_FORBIDDEN', 'another channel');
  const source = tokens(() => token(['tok-403'], { methods: ['get', 'sync'] }));
  const c = client(source.fn);
  await refusal(t, c.publish('tok-403', 'x'), 403, 'COMET_ERR_FORBIDDEN', 'a token without put');
  t.equal(source.calls, 1, 'the function was not called again');
  t.equal(sent.length, 2, 'one request each');
  const sub = client(token(['tok-403:*'])).subscribe('tok-403', () => t.fail('no messages'), { onError: () => undefined });
  await refusal(t, within(sub.done, 5000, 'the refused subscription ends'), 403, 'COMET_ERR_FORBIDDEN', 'a subscription to a channel not covered');
});

t.test('a subscription whose token expires under it: refreshed, and it goes on from where it was without losing a message', async (t) => {
  // exp is in whole seconds: this token expires 1 to 2 s from now, in the middle of the chain.
  const source = tokens(
    () => token(['tok-sub'], { ttl: 2 }),
    () => token(['tok-sub']),
  );
  const c = client(source.fn);
  const publisher = client(token(['tok-sub']));
  const got: string[] = [];
  const errors: CometClientError[] = [];
  const sub = c.subscribe('tok-sub', (messages) => got.push(...messages), { onError: (err) => errors.push(err) });
  t.teardown(() => sub.stop());
  t.ok(await srv.waitWaiting(1, { timeoutMs: 5000 }), 'the subscription is waiting');
  const sentMessages: string[] = [];
  const started = Date.now();
  // Puts every 50 ms for 3.5 s: some land while the refused get is answered and retried.
  for (let i = 0; Date.now() - started < 3500; i++) {
    sentMessages.push(`m${i}`);
    await publisher.publish('tok-sub', `m${i}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await waitFor(() => got.length >= sentMessages.length, { timeoutMs: 5000, what: `all ${sentMessages.length} messages delivered` });
  t.equal(source.calls, 2, 'the token function was called again once the first token expired');
  t.strictSame(got, sentMessages, 'every message once, in order, across the refresh');
  t.strictSame(errors, [], 'the refresh is not an error the application sees');
  t.ok(await stillPending(sub.done, 100), 'the subscription goes on');
});

t.test('token option types are checked when the client is created', async (t) => {
  t.throws(() => createClient({ url: 'http://127.0.0.1:1/', token: '' }), TypeError);
  t.throws(() => createClient({ url: 'http://127.0.0.1:1/', token: 42 as unknown as string }), TypeError);
  const c = createClient({ url, token: () => 42 as unknown as string });
  await t.rejects(c.sync('x'), TypeError, 'a function returning something else than a string');
});
