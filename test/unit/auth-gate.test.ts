/**
 * The per-thread token gate (src/auth/gate.ts) as front.ts calls it: a token
 * is verified once and found in the cache after, only ever by its whole
 * text; exp is checked on every use; the cache keeps at most
 * --auth-cache-size tokens; bearerToken takes the scheme in any case.
 */
import { createHmac } from 'node:crypto';
import t from 'tap';
import { AuthGate, bearerToken } from '../../src/auth/gate.js';
import type { Config } from '../../src/config/options.js';

const SECRET = 's'.repeat(32);

function mint(claims: Record<string, unknown>, secret = SECRET): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

function gateWith(cacheSize = 10_000) {
  const counts = { verified: 0, remembered: 0 };
  const config = { auth: 'all', authLeeway: 0, authCacheSize: cacheSize, maxTokenBytes: 8192 } as Config;
  const gate = AuthGate.create(config, { secrets: [SECRET], publicKeys: [] }, { verified: () => counts.verified++, remembered: () => counts.remembered++ })!;
  return { gate, counts };
}

t.test('a chain re-using one token pays one signature check', async (t) => {
  const { gate, counts } = gateWith();
  const token = mint({ exp: inAnHour(), channels: ['*'] });
  for (let i = 0; i < 5; i++) t.equal(gate.check(token, 'get', 'news'), undefined);
  // a fresh copy of the same text, as each request's header is
  t.equal(gate.check(Buffer.from(token).toString(), 'put', 'news'), undefined);
  t.same(counts, { verified: 1, remembered: 5 });
});

t.test("a token sharing the cached one's last characters is verified on its own, and refused", async (t) => {
  const { gate, counts } = gateWith();
  const token = mint({ exp: inAnHour(), channels: ['*'] });
  const [, , signature] = token.split('.');
  const forged = `${mint({ exp: inAnHour(), channels: ['*'], admin: true })
    .split('.')
    .slice(0, 2)
    .join('.')}.${signature}`;
  t.equal(gate.check(token, 'get', 'news'), undefined);
  t.equal(gate.check(forged, 'get', 'news')?.code, 'COMET_ERR_UNAUTHORIZED', 'not the cached grant');
  t.equal(gate.check(token, 'get', 'news'), undefined, 'the cached token is still there');
  t.same(counts, { verified: 1, remembered: 1 });
});

t.test('exp is checked on every use, and an expired token leaves the cache', async (t) => {
  const { gate, counts } = gateWith();
  const expired = mint({ exp: Math.floor(Date.now() / 1000) - 1, channels: ['*'] });
  t.match(gate.check(expired, 'get', 'news')?.message, /expired/);
  t.match(gate.check(expired, 'get', 'news')?.message, /expired/);
  t.same(counts, { verified: 2, remembered: 0 });
});

t.test('the cache keeps --auth-cache-size tokens, the oldest giving way; 0 verifies every request', async (t) => {
  const { gate, counts } = gateWith(2);
  const [a, b, c] = [1, 2, 3].map((n) => mint({ exp: inAnHour() + n, channels: ['*'] }));
  for (const token of [a, b, c, c, b, a]) t.equal(gate.check(token!, 'get', 'news'), undefined);
  t.same(counts, { verified: 4, remembered: 2 }, 'a verified again after c pushed it out');
  const none = gateWith(0);
  for (let i = 0; i < 3; i++) none.gate.check(a!, 'get', 'news');
  t.same(none.counts, { verified: 3, remembered: 0 });
});

t.test('a remembered grant still limits methods and channels', async (t) => {
  const { gate } = gateWith();
  const token = mint({ exp: inAnHour(), channels: ['room-*'], methods: ['get'] });
  t.equal(gate.check(token, 'get', 'room-1'), undefined);
  t.equal(gate.check(token, 'put', 'room-1')?.code, 'COMET_ERR_FORBIDDEN');
  t.equal(gate.check(token, 'sync', 'room-1')?.code, 'COMET_ERR_FORBIDDEN');
  t.equal(gate.check(token, 'get', 'news')?.code, 'COMET_ERR_FORBIDDEN');
  t.equal(gate.check(token, 'get', 'room-2'), undefined);
});

t.test('bearerToken: the scheme in any case, other schemes not ours', async (t) => {
  t.equal(bearerToken('Bearer abc'), 'abc');
  t.equal(bearerToken('bearer abc'), 'abc');
  t.equal(bearerToken('BEARER  abc '), 'abc');
  t.equal(bearerToken('bEaReR abc'), 'abc');
  t.equal(bearerToken('Basic abc'), undefined);
  t.equal(bearerToken('Bearer'), undefined);
  t.equal(bearerToken('Bearerabc'), undefined);
  t.equal(bearerToken(''), undefined);
});
