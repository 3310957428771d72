/**
 * Access control (--auth, protocol.md "Access control") over real sockets:
 * every refusal with its status, code and challenge, as a hostile client
 * would try them (no token, forged, unsigned, expired, a public key used as
 * an HMAC secret, oversized, loosely encoded), and every way a good token
 * is accepted (header or parameter, query or form, JSONP, secrets in
 * rotation, RS256 and ES256 keys), what its claims cover, the per-thread
 * cache of verified tokens, and the keys' start-up checks.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { checkError, uniq } from './helpers/protocol.js';
import { type CometServer, type HttpResponse, type Params, runCli, startServer } from './helpers/server.js';
import { type Claims, claims, ecPair, es256, hs256, nowSeconds, rs256, rsaPair, unsigned } from './helpers/tokens.js';

const SECRET_A = randomBytes(32).toString('base64url');
const SECRET_B = randomBytes(32).toString('base64url');
/** Only a file can carry a secret with a comma: --auth-secret splits on them. */
const FILE_SECRET = `file,secret-${randomBytes(24).toString('hex')}`;
const RSA = rsaPair();
const RSA_2 = rsaPair();
const EC = ecPair();

const dir = mkdtempSync(path.join(os.tmpdir(), 'comet-auth-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const where = path.join(dir, name);
  writeFileSync(where, text);
  return where;
}
const SECRET_FILE = file('secrets', `${FILE_SECRET}\n`);
const KEYS_FILE = file('keys.pem', RSA.publicPem + RSA_2.publicPem);
const EC_FILE = file('ec.pem', EC.publicPem);

const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
const good = (extra: Claims = {}) => hs256(SECRET_A, claims(extra));

function unauthorized(t: Test, res: HttpResponse, what: string, reason?: RegExp): void {
  checkError(t, res, 401, 'COMET_ERR_UNAUTHORIZED', what);
  t.equal(res.headers['www-authenticate'], 'Bearer', `${what}: WWW-Authenticate: Bearer`);
  if (reason) t.match(res.json?.error, reason, `${what}: says why`);
}

function forbidden(t: Test, res: HttpResponse, what: string): void {
  checkError(t, res, 403, 'COMET_ERR_FORBIDDEN', what);
  t.equal(res.headers['www-authenticate'], undefined, `${what}: no challenge (the token is good, it does not cover this)`);
}

/** The messages a channel holds, read with a token that covers everything. */
async function stored(srv: CometServer, channel: string): Promise<string[]> {
  const res = await srv.call({ method: 'get', channel, time: 0, timeout: 0 }, bearer(good()));
  t.equal(res.status, 200, `read back ${channel}`, { body: res.body });
  return res.json.messages;
}

t.test('--auth all', async (t) => {
  const srv = await startServer({
    t,
    threads: 2,
    args: ['--auth', 'all', '--auth-secret', `${SECRET_A},${SECRET_B}`, '--auth-secret-file', SECRET_FILE, '--log-level', 'debug'],
  });
  const put = (channel: string, message: string, token: string, extra: Params = {}) => srv.call({ method: 'put', channel, message, ...extra }, bearer(token));

  t.test('every method needs a token; a refused put stores nothing', async (t) => {
    const ch = uniq('all');
    unauthorized(t, await srv.call({ method: 'put', channel: ch, message: 'no' }), 'put without a token', /token is required/);
    unauthorized(t, await srv.call({ method: 'get', channel: ch, time: 0, timeout: 0 }), 'get without a token');
    unauthorized(t, await srv.call({ method: 'sync', channel: ch }), 'sync without a token');
    const head = await srv.request({ method: 'HEAD', query: { method: 'get', channel: ch } });
    t.equal(head.status, 401, 'HEAD without a token: 401, as its GET would be');
    t.equal(head.headers['www-authenticate'], 'Bearer', 'HEAD without a token: the challenge');
    unauthorized(t, await srv.post({ method: 'put', channel: ch, message: 'form' }), 'form put without a token');
    const preflight = await srv.request({ method: 'OPTIONS', headers: { Origin: 'https://a.example', 'Access-Control-Request-Headers': 'authorization' } });
    t.equal(preflight.status, 204, 'a preflight needs none: browsers send no credentials with it');
    t.match(preflight.headers['access-control-allow-headers'], /Authorization/, 'and it allows the Authorization header');
    t.strictSame(await stored(srv, ch), [], 'nothing was stored');
    t.equal((await put(ch, 'yes', good())).status, 200, 'a put with a token is served');
    t.strictSame(await stored(srv, ch), ['yes'], 'and stored');
  });

  t.test('the header and the parameter, in the query or a form body; the header wins', async (t) => {
    const ch = uniq('carry');
    const token = good();
    const forged = hs256('not-the-secret', claims());
    t.equal((await srv.call({ method: 'put', channel: ch, message: 'query', token })).status, 200, 'token parameter in the query');
    t.equal((await srv.post({ method: 'put', channel: ch, message: 'form', token })).status, 200, 'token parameter in a form body');
    t.equal(
      (await srv.post({ method: 'put', channel: ch, message: 'body-wins', token }, { query: { token: forged } })).status,
      200,
      "a form body's token wins over the query's",
    );
    t.equal(
      (await srv.call({ method: 'put', channel: ch, message: 'header', token: forged }, bearer(token))).status,
      200,
      'a good header over a forged parameter',
    );
    unauthorized(
      t,
      await srv.call({ method: 'put', channel: ch, message: 'no', token }, bearer(forged)),
      'a forged header over a good parameter: the header is used',
    );
    const scheme = await srv.call({ method: 'put', channel: ch, message: 'scheme' }, { headers: { Authorization: `bEaReR ${token}` } });
    t.equal(scheme.status, 200, 'the scheme is case-insensitive (RFC 7235)');
    const basic = await srv.call({ method: 'put', channel: ch, message: 'basic', token }, { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
    t.equal(basic.status, 200, "another scheme's Authorization (a proxy's Basic) is not ours: the parameter is used");
    unauthorized(t, await srv.call({ method: 'put', channel: ch, message: 'no' }, { headers: { Authorization: 'Bearer ' } }), 'an empty bearer token');
    t.strictSame(await stored(srv, ch), ['query', 'form', 'body-wins', 'header', 'scheme', 'basic'], 'exactly the accepted puts were stored');
  });

  t.test('JSONP carries its token as a parameter', async (t) => {
    const ch = uniq('jsonp');
    const ok = await srv.call({ method: 'put', channel: ch, message: 'j', callback: 'cb', token: good() });
    t.equal(ok.status, 200, 'a JSONP put with a token');
    t.match(ok.body, /^\/\*\*\/ ?cb\(\{"time":\d+\}\);?$/, 'answered as script');
    const got = await srv.call({ method: 'get', channel: ch, time: 0, timeout: 0, callback: 'cb', token: good() });
    t.match(got.body, /cb\(\{"time":\d+,"messages":\["j"\]/, 'a JSONP get with a token');
    unauthorized(t, await srv.call({ method: 'get', channel: ch, callback: 'cb' }), 'a JSONP get without one');
  });

  t.test('secrets in rotation, and from a file', async (t) => {
    const ch = uniq('rotate');
    t.equal((await put(ch, 'a', hs256(SECRET_A, claims()))).status, 200, 'the first secret');
    t.equal((await put(ch, 'b', hs256(SECRET_B, claims()))).status, 200, 'the second secret');
    t.equal((await put(ch, 'f', hs256(FILE_SECRET, claims()))).status, 200, "the file's secret, comma and all");
    unauthorized(t, await put(ch, 'x', hs256(randomBytes(32).toString('base64url'), claims())), 'any other secret', /signature/);
    unauthorized(t, await put(ch, 'x', hs256(FILE_SECRET.split(',')[0]!, claims())), 'part of the comma secret');
  });

  t.test('channels: exact names, prefix patterns, everything', async (t) => {
    const ch = uniq('room');
    const token = good({ channels: [`${ch}:*`, 'lobby', 'a*b*'] });
    t.equal((await put(`${ch}:1`, 'p', token)).status, 200, 'a prefix pattern covers a channel under it');
    t.equal((await put(`${ch}:`, 'p', token)).status, 200, 'and the bare prefix');
    t.equal((await put('lobby', 'e', token)).status, 200, 'an exact name');
    t.equal((await put('a*b*c', 'e', token)).status, 200, "only the last * is a pattern: 'a*b*' covers 'a*b*c'");
    forbidden(t, await put(ch, 'x', token), 'the prefix without its colon');
    forbidden(t, await put(`${ch}x:1`, 'x', token), 'a longer name sharing the start');
    forbidden(t, await put('lobby2', 'x', token), 'an exact name covers only itself');
    forbidden(t, await put('axb', 'x', token), "'a*b*' is no glob");
    forbidden(t, await put('x', 'x', good({ channels: [] })), 'an empty list covers nothing');
    t.equal((await put(uniq('any'), 'x', good({ channels: ['*'] }))).status, 200, '"*" covers every channel');
    forbidden(t, await srv.call({ method: 'get', channel: 'nope', timeout: 0 }, bearer(token)), 'a get outside the channels');
    forbidden(t, await srv.call({ method: 'sync', channel: 'nope' }, bearer(token)), 'a sync outside the channels');
    t.strictSame(await stored(srv, ch), [], 'a forbidden put stores nothing');
  });

  t.test('methods: absent means all three; listed, only those', async (t) => {
    const ch = uniq('methods');
    const reader = good({ methods: ['get', 'sync'] });
    forbidden(t, await put(ch, 'x', reader), 'put with a get-and-sync token');
    t.match((await put(ch, 'x', reader)).json?.error, /put/, 'the refusal names the method');
    t.equal((await srv.call({ method: 'sync', channel: ch }, bearer(reader))).status, 200, 'sync with it');
    t.equal((await srv.call({ method: 'get', channel: ch, timeout: 0 }, bearer(reader))).status, 200, 'get with it');
    const writer = good({ methods: ['put', 'subscribe-later'] });
    t.equal((await put(ch, 'w', writer)).status, 200, 'put with a put token (an unknown method name is ignored)');
    forbidden(t, await srv.call({ method: 'get', channel: ch, timeout: 0 }, bearer(writer)), 'get with a put token');
    forbidden(t, await srv.call({ method: 'sync', channel: ch }, bearer(good({ methods: [] }))), 'an empty list allows nothing');
    t.strictSame(await stored(srv, ch), ['w'], 'only the allowed put was stored');
  });

  t.test('time claims: exp required and passed, nbf not reached', async (t) => {
    const ch = uniq('time');
    unauthorized(t, await put(ch, 'x', good({ exp: nowSeconds() - 1 })), 'exp passed', /expired/);
    unauthorized(t, await put(ch, 'x', good({ exp: nowSeconds() })), 'exp is now: refused from that second (RFC 7519 4.1.4)', /expired/);
    unauthorized(t, await put(ch, 'x', hs256(SECRET_A, { channels: ['*'] })), 'no exp', /exp/);
    unauthorized(t, await put(ch, 'x', good({ exp: String(nowSeconds() + 60) })), 'exp as a string');
    unauthorized(t, await put(ch, 'x', good({ nbf: nowSeconds() + 60 })), 'nbf not reached', /nbf/);
    unauthorized(t, await put(ch, 'x', good({ nbf: 'soon' })), 'nbf not a number');
    unauthorized(t, await put(ch, 'x', hs256(SECRET_A, { exp: nowSeconds() + 60 })), 'no channels', /channels/);
    unauthorized(t, await put(ch, 'x', good({ channels: 'room' })), 'channels not a list');
    unauthorized(t, await put(ch, 'x', good({ channels: ['a', 7] })), 'channels holding a number');
    unauthorized(t, await put(ch, 'x', good({ methods: 'put' })), 'methods not a list');
    t.equal((await put(ch, 'ok', good({ nbf: nowSeconds() - 1, aud: 'ignored', custom: { any: 1 } }))).status, 200, 'nbf passed, unknown claims ignored');
    t.strictSame(await stored(srv, ch), ['ok'], 'only the valid put was stored');
  });

  t.test('forged, unsigned and malformed tokens', async (t) => {
    const ch = uniq('forged');
    const payload = claims();
    const valid = hs256(SECRET_A, payload);
    const [h, p, s] = valid.split('.') as [string, string, string];
    const cases: Array<[string, string, RegExp?]> = [
      ['alg none, no signature', `${unsigned({ alg: 'none', typ: 'JWT' }, payload)}.`, /alg|well-formed/],
      ['alg none with a signature', `${unsigned({ alg: 'none' }, payload)}.${s}`, /alg/],
      ['alg None', hs256(SECRET_A, payload, { alg: 'None' }), /alg/],
      ['alg HS512', hs256(SECRET_A, payload, { alg: 'HS512' }), /alg/],
      ['no alg', `${unsigned({ typ: 'JWT' }, payload)}.${s}`, /alg/],
      ['RS256 without any RSA key on this server', rs256(RSA.privateKey, payload), /alg/],
      ['a crit header', hs256(SECRET_A, payload, { crit: ['exp'] }), /alg/],
      ['claims changed after signing', `${h}.${Buffer.from(JSON.stringify({ ...payload, channels: ['*', 'more'] })).toString('base64url')}.${s}`, /signature/],
      ['signature cut short', `${h}.${p}.${s.slice(0, 20)}`, /signature/],
      ['two parts', `${h}.${p}`, /well-formed/],
      ['four parts', `${valid}.${s}`, /well-formed/],
      ['one part', 'token', /well-formed/],
      ['base64 with padding', `${h}.${p}.${s}=`, /well-formed/],
      ['standard base64 characters', `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}${/[-_]/.test(s) ? '' : '+'}`, /well-formed/],
      ['stray trailing character', `${h}.${p}.${s}A`, /well-formed|signature/],
      ['a header that is not JSON', `${Buffer.from('{alg:HS256}').toString('base64url')}.${p}.${s}`, /well-formed/],
      ['a header that is a list', `${Buffer.from('["HS256"]').toString('base64url')}.${p}.${s}`, /well-formed/],
      ['claims that are a list', hs256(SECRET_A, [1, 2] as unknown as Claims), /well-formed/],
      ['claims that are not JSON', `${h}.${Buffer.from('nope').toString('base64url')}.${s}`],
    ];
    for (const [what, token, reason] of cases) unauthorized(t, await put(ch, 'x', token), what, reason);
    // A 43-character base64url signature has 2 spare bits: another spelling of the same bytes must not pass.
    const last = s.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
    unauthorized(t, await put(ch, 'x', `${h}.${p}.${s.slice(0, -1)}${twin}`), 'a second spelling of the same signature', /well-formed/);
    t.strictSame(await stored(srv, ch), [], 'none of them stored anything');
  });

  t.test('an oversized token is refused before it is decoded', async (t) => {
    const big = good({ pad: 'x'.repeat(5000) });
    unauthorized(t, await put(uniq('big'), 'x', big), 'a validly signed token longer than --max-token-bytes', /longer than 4096/);
  });

  t.test('a token that expires while its get waits does not fail the get', async (t) => {
    const ch = uniq('waiting');
    const shortLived = good({ exp: nowSeconds() + 2 });
    const waiting = srv.call({ method: 'get', channel: ch, timeout: 10 }, bearer(shortLived));
    t.ok(await srv.waitParked(1), 'the get is parked');
    await new Promise((resolve) => setTimeout(resolve, (nowSeconds() + 3) * 1000 - Date.now()));
    unauthorized(t, await put(ch, 'late', shortLived), 'the token has expired by now', /expired/);
    t.equal((await put(ch, 'late', good())).status, 200, 'another publisher puts');
    const res = await waiting;
    t.equal(res.status, 200, 'the get that started with a valid token is answered');
    t.strictSame(res.json?.messages, ['late'], 'with the message');
  });

  t.test('neither secrets nor tokens reach the log', async (t) => {
    const token = good();
    await put(uniq('log'), 'x', token);
    await put(uniq('log'), 'x', `${token}x`);
    const output = srv.stdout + srv.stderr;
    for (const [what, secret] of [
      ['first secret', SECRET_A],
      ['second secret', SECRET_B],
      ['file secret', FILE_SECRET],
      ['token', token.split('.')[2]!],
    ]) {
      t.notOk(output.includes(secret!), `the ${what} is not in the output (debug level)`);
    }
    t.ok(srv.logs().length > 0, 'the server did log');
  });
});

t.test('--auth put: puts need a token, get and sync stay open', async (t) => {
  const srv = await startServer({ t, args: ['--auth', 'put', '--auth-secret', SECRET_A] });
  const ch = uniq('put-only');
  unauthorized(t, await srv.call({ method: 'put', channel: ch, message: 'no' }), 'put without a token');
  t.equal((await srv.call({ method: 'put', channel: ch, message: 'yes' }, bearer(good()))).status, 200, 'put with one');
  t.equal((await srv.call({ method: 'sync', channel: ch })).status, 200, 'sync without one');
  const got = await srv.call({ method: 'get', channel: ch, time: 0, timeout: 0 });
  t.equal(got.status, 200, 'get without one');
  t.strictSame(got.json?.messages, ['yes'], 'sees only the authorised put');
  t.equal((await srv.call({ method: 'get', channel: ch, timeout: 0, token: 'garbage' })).status, 200, 'a get is not even looked at for a token');
});

t.test('--auth off (the default) serves everything and ignores tokens', async (t) => {
  const srv = await startServer({ t });
  t.equal((await srv.call({ method: 'put', channel: uniq('off'), message: 'x', token: 'garbage' }, bearer('garbage'))).status, 200, 'put');
});

t.test('RS256 and ES256 public keys', async (t) => {
  const srv = await startServer({ t, threads: 2, args: ['--auth', 'all', '--auth-public-key', `${KEYS_FILE},${EC_FILE}`] });
  const put = (token: string) => srv.call({ method: 'put', channel: uniq('pk'), message: 'x' }, bearer(token));
  t.equal((await put(rs256(RSA.privateKey, claims()))).status, 200, 'RS256, the first key of a file');
  t.equal((await put(rs256(RSA_2.privateKey, claims()))).status, 200, 'RS256, the second key of the same file');
  t.equal((await put(es256(EC.privateKey, claims()))).status, 200, 'ES256');
  unauthorized(t, await put(rs256(rsaPair().privateKey, claims())), 'RS256 by a key the server does not hold', /signature/);
  unauthorized(t, await put(es256(ecPair().privateKey, claims())), 'ES256 by a key the server does not hold', /signature/);
  const rsToken = rs256(RSA.privateKey, claims());
  const [rh, rp] = rsToken.split('.');
  unauthorized(t, await put(`${rh}.${rp}.${es256(EC.privateKey, claims()).split('.')[2]}`), 'an RS256 header with an ES256 signature', /signature/);
  const es = es256(EC.privateKey, claims()).split('.');
  const der = Buffer.from(es[2]!, 'base64url');
  unauthorized(
    t,
    await put(`${es[0]}.${es[1]}.${Buffer.concat([der, Buffer.from([0])]).toString('base64url')}`),
    'an ES256 signature of the wrong length',
    /signature/,
  );
  unauthorized(t, await put(hs256(SECRET_A, claims())), 'HS256 on a server without secrets', /alg/);
  t.test('algorithm confusion: the public key as an HMAC secret', async (t) => {
    for (const pem of [RSA.publicPem, EC.publicPem]) {
      unauthorized(t, await put(hs256(pem, claims())), 'HS256 signed with the PEM text', /alg/);
      unauthorized(t, await put(hs256(pem.trim(), claims())), 'and with it trimmed');
    }
  });
  t.test('with secrets beside the keys, HS256 still checks only the secrets', async (t) => {
    const both = await startServer({ t, args: ['--auth', 'all', '--auth-secret', SECRET_A, '--auth-public-key', KEYS_FILE] });
    const putBoth = (token: string) => both.call({ method: 'put', channel: uniq('both'), message: 'x' }, bearer(token));
    t.equal((await putBoth(hs256(SECRET_A, claims()))).status, 200, 'HS256 by the secret');
    t.equal((await putBoth(rs256(RSA.privateKey, claims()))).status, 200, 'RS256 by the key');
    unauthorized(t, await putBoth(hs256(RSA.publicPem, claims())), 'HS256 signed with the public key', /signature/);
  });
});

t.test('public keys inline, from the environment', async (t) => {
  const srv = await startServer({ t, args: ['--auth', 'all'], env: { COMET_AUTH_PUBLIC_KEY: EC.publicPem } });
  t.equal((await srv.call({ method: 'put', channel: uniq('env'), message: 'x' }, bearer(es256(EC.privateKey, claims())))).status, 200, 'ES256');
  const secretEnv = await startServer({ t, env: { COMET_AUTH: 'all', COMET_AUTH_SECRET: SECRET_B } });
  unauthorized(t, await secretEnv.call({ method: 'sync', channel: 'x' }), 'COMET_AUTH=all');
  t.equal((await secretEnv.call({ method: 'sync', channel: 'x' }, bearer(hs256(SECRET_B, claims())))).status, 200, 'COMET_AUTH_SECRET');
});

t.test('the cache of verified tokens', async (t) => {
  const chainOf = async (srv: CometServer, token: string, n: number) => {
    const ch = uniq('cache');
    let time = (await srv.call({ method: 'sync', channel: ch }, bearer(token))).json.time;
    for (let i = 0; i < n; i++) {
      await srv.call({ method: 'put', channel: ch, message: String(i) }, bearer(token));
      const res = await srv.call({ method: 'get', channel: ch, time }, bearer(token));
      t.equal(res.status, 200, `chained get ${i}`, { body: res.body });
      time = res.json.time;
    }
  };
  t.test('a chain re-using one token pays one signature check', async (t) => {
    const srv = await startServer({ t, args: ['--auth', 'all', '--auth-secret', SECRET_A] });
    await chainOf(srv, good(), 10);
    const m = await srv.metrics();
    t.equal(m.value('comet_tokens_verified_total'), 1, 'one verification');
    t.equal(m.value('comet_tokens_remembered_total'), 20, 'the other 20 requests found it remembered');
  });
  t.test('--auth-cache-size 0 checks every time', async (t) => {
    const srv = await startServer({ t, args: ['--auth', 'all', '--auth-secret', SECRET_A, '--auth-cache-size', '0'] });
    await chainOf(srv, good(), 5);
    t.equal((await srv.metrics()).value('comet_tokens_verified_total'), 11, 'every request verified');
  });
  t.test('the oldest entry makes way, and a remembered token still expires', async (t) => {
    const srv = await startServer({ t, args: ['--auth', 'all', '--auth-secret', SECRET_A, '--auth-cache-size', '2'] });
    const sync = (token: string) => srv.call({ method: 'sync', channel: 'c' }, bearer(token));
    const expiring = good({ exp: nowSeconds() + 2 });
    t.equal((await sync(expiring)).status, 200, 'accepted while valid');
    t.equal((await sync(expiring)).status, 200, 'and again, from the cache');
    t.equal((await srv.metrics()).value('comet_tokens_verified_total'), 1, 'verified once');
    await new Promise((resolve) => setTimeout(resolve, (nowSeconds() + 3) * 1000 - Date.now()));
    unauthorized(t, await sync(expiring), 'refused once exp passed, though it was remembered', /expired/);
    const [a, b, c] = [good({ n: 1 }), good({ n: 2 }), good({ n: 3 })];
    for (const token of [a, b, c, a]) await sync(token);
    t.equal((await srv.metrics()).value('comet_tokens_verified_total'), 5, 'three new tokens, then the first again: it made way for the third');
  });
  t.test('--auth-leeway allows for clock differences', async (t) => {
    const srv = await startServer({ t, args: ['--auth', 'all', '--auth-secret', SECRET_A, '--auth-leeway', '30'] });
    const sync = (token: string) => srv.call({ method: 'sync', channel: 'c' }, bearer(token));
    t.equal((await sync(good({ exp: nowSeconds() - 10 }))).status, 200, 'exp 10 s ago, within 30 s');
    t.equal((await sync(good({ nbf: nowSeconds() + 10 }))).status, 200, 'nbf in 10 s, within 30 s');
    unauthorized(t, await sync(good({ exp: nowSeconds() - 40 })), 'exp 40 s ago', /expired/);
    unauthorized(t, await sync(good({ nbf: nowSeconds() + 40 })), 'nbf in 40 s', /nbf/);
  });
});

t.test('key start-up checks: the server refuses to start, naming the option and never the secret', async (t) => {
  const small = rsaPair(1024);
  const cases: Array<[string, string[], RegExp, Record<string, string>?]> = [
    ['--auth all without a key', ['--auth', 'all'], /--auth all needs a key/],
    ['--auth put without a key', ['--auth', 'put'], /--auth put needs a key/],
    ['an empty secret in the list', ['--auth', 'all', '--auth-secret', `${SECRET_A},`], /empty secret/],
    ['a PEM key as the secret', ['--auth', 'all', `--auth-secret=${RSA.publicPem}`], /is a PEM key/],
    ['a secret file that cannot be read', ['--auth', 'all', '--auth-secret-file', path.join(dir, 'missing')], /--auth-secret-file: cannot read .*ENOENT/],
    ['a key file that cannot be read', ['--auth', 'all', '--auth-public-key', path.join(dir, 'missing.pem')], /--auth-public-key: cannot read/],
    ['a file with no PEM in it', ['--auth', 'all', '--auth-public-key', SECRET_FILE], /no PEM block/],
    [
      'a private key',
      ['--auth', 'all', '--auth-public-key', file('private.pem', RSA.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)],
      /private key/,
    ],
    ['an RSA key under 2048 bits', ['--auth', 'all', '--auth-public-key', file('small.pem', small.publicPem)], /fewer than 2048 bits/],
    ['an EC key on another curve', ['--auth', 'all', '--auth-public-key', file('p384.pem', ecPair('secp384r1').publicPem)], /neither RSA/],
    [
      'a PEM block that is no key',
      ['--auth', 'all', '--auth-public-key', file('junk.pem', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')],
      /not a public key/,
    ],
    ['an unknown --auth mode', ['--auth', 'sometimes', '--auth-secret', SECRET_A], /--auth must be one of off, put, all/],
  ];
  for (const [what, args, message] of cases) {
    const run = await runCli(['--port', '0', '--host', '127.0.0.1', '--threads', '1', ...args]);
    t.equal(run.code, 2, `${what}: exit 2`, { stderr: run.stderr });
    t.notOk(run.listened, `${what}: never listened`);
    t.match(run.stderr, message, `${what}: says what is wrong`);
    t.notOk((run.stdout + run.stderr).includes(SECRET_A), `${what}: the secret is not echoed`);
  }
});

t.test('warnings for configurations that protect less than they seem to', async (t) => {
  const off = await startServer({ t, args: ['--auth-secret', SECRET_A] });
  t.ok(
    off.logs().some((l) => l.level === 40 && /--auth is off/.test(l.msg)),
    'keys given with --auth off',
  );
  const short = await startServer({ t, args: ['--auth', 'all', '--auth-secret', `short,${SECRET_A}`] });
  t.ok(
    short.logs().some((l) => l.level === 40 && /1 HS256 secret\(s\) shorter than 32 bytes/.test(l.msg)),
    'a short secret',
  );
  t.notOk(short.stdout.includes('short,'), 'without naming it');
});
