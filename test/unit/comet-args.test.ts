/**
 * The `comet` command line's token options, parsed without a process: --token
 * against COMET_TOKEN, and `comet token`'s options and their usage errors.
 * mintToken's output is checked claim by claim and against its HMAC.
 */
import { createHmac } from 'node:crypto';
import t, { type Test } from 'tap';
import { parseCometArgs, UsageError } from '../../src/cli/comet-args.js';
import { mintToken } from '../../src/cli/token.js';

/** Checks that parsing throws a UsageError (exit 2) whose message matches. */
function usage(t: Test, argv: string[], env: NodeJS.ProcessEnv, message: RegExp): void {
  let caught: unknown;
  try {
    parseCometArgs(argv, env);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof UsageError, `comet ${argv.join(' ')}: a usage error`, { caught });
  t.match((caught as Error)?.message, message, `comet ${argv.join(' ')}: says so`);
}

t.test('--token, COMET_TOKEN: the flag wins, an empty variable counts as unset', async (t) => {
  t.match(parseCometArgs(['pub', 'c', 'm', '--token', 'flag'], { COMET_TOKEN: 'env' }), { name: 'pub', token: 'flag' });
  t.match(parseCometArgs(['sync', 'c'], { COMET_TOKEN: 'env' }), { name: 'sync', token: 'env' });
  t.match(parseCometArgs(['sub', 'c'], { COMET_TOKEN: 'env' }), { name: 'sub', token: 'env' });
  t.equal((parseCometArgs(['sync', 'c'], { COMET_TOKEN: '' }) as { token?: string }).token, undefined, 'empty COMET_TOKEN: no token');
  t.equal((parseCometArgs(['sync', 'c'], {}) as { token?: string }).token, undefined, 'neither: no token');
  usage(t, ['sync', 'c', '--token', ''], {}, /--token must not be empty/);
  usage(t, ['token', '--secret', 's', '--channels', 'a', '--token', 'x'], {}, /--token only applies to pub, sub and sync/);
});

t.test('sub --transport: fetch by default, events or websocket, nothing else, and only for sub', async (t) => {
  t.match(parseCometArgs(['sub', 'c'], {}), { name: 'sub', transport: 'fetch' });
  for (const transport of ['fetch', 'events', 'websocket']) {
    t.match(parseCometArgs(['sub', 'c', '--transport', transport], {}), { name: 'sub', transport }, transport);
  }
  usage(t, ['sub', 'c', '--transport', 'jsonp'], {}, /--transport must be one of fetch, events, websocket, got "jsonp"/);
  usage(t, ['sub', 'c', '--transport', ''], {}, /--transport must be one of/);
  usage(t, ['pub', 'c', 'm', '--transport', 'websocket'], {}, /--transport only applies to sub/);
});

t.test('comet token: options, defaults, and the secret from COMET_AUTH_SECRET', async (t) => {
  t.strictSame(parseCometArgs(['token', '--secret', 's', '--channels', 'a,room:*'], {}), {
    name: 'token',
    secret: 's',
    channels: ['a', 'room:*'],
    methods: undefined,
    ttl: 3600,
  });
  t.match(parseCometArgs(['token', '--secret', 's', '--channels', '*', '--methods', 'put,get', '--ttl', '60'], {}), {
    channels: ['*'],
    methods: ['put', 'get'],
    ttl: 60,
  });
  t.match(parseCometArgs(['token', '--channels', 'a'], { COMET_AUTH_SECRET: 'first,second' }), { secret: 'first' }, 'the first of the list');
  t.match(parseCometArgs(['token', '--channels', 'a', '--secret', 'flag'], { COMET_AUTH_SECRET: 'env' }), { secret: 'flag' }, '--secret wins');
  usage(t, ['token', '--channels', 'a'], {}, /missing --secret/);
  usage(t, ['token', '--channels', 'a'], { COMET_AUTH_SECRET: '' }, /missing --secret/);
  usage(t, ['token', '--secret', 's'], {}, /missing --channels/);
  usage(t, ['token', '--secret', 's', '--channels', 'a,,b'], {}, /--channels must be/);
  usage(t, ['token', '--secret', 's', '--channels', 'a', '--methods', 'put,delete'], {}, /--methods must be/);
  usage(t, ['token', '--secret', 's', '--channels', 'a', '--methods', ''], {}, /--methods must be/);
  for (const ttl of ['0', '-5', '1.5', 'soon', '']) usage(t, ['token', '--secret', 's', '--channels', 'a', `--ttl=${ttl}`], {}, /--ttl must be/);
  usage(t, ['token', 'extra', '--secret', 's', '--channels', 'a'], {}, /unexpected argument "extra"/);
  usage(t, ['sync', 'c', '--channels', 'a'], {}, /--channels only applies to token/);
  usage(t, ['token', '--secret', 's', '--channels', 'a', '--url', 'http://x/'], {}, /--url only applies to pub, sub and sync/);
});

t.test('mintToken: an HS256 JWT with exp, channels and methods only when given', async (t) => {
  const now = 1_800_000_000_500;
  const token = mintToken({ secret: 'sekrit', channels: ['a', 'room:*'], methods: ['put'], ttl: 90, now });
  const [header, claims, signature] = token.split('.');
  const decode = (part: string | undefined) => JSON.parse(Buffer.from(part!, 'base64url').toString('utf8'));
  t.strictSame(decode(header), { alg: 'HS256', typ: 'JWT' });
  t.strictSame(decode(claims), { exp: 1_800_000_090, channels: ['a', 'room:*'], methods: ['put'] });
  t.equal(signature, createHmac('sha256', 'sekrit').update(`${header}.${claims}`).digest('base64url'), 'signed with the secret');
  const all = mintToken({ secret: 'sekrit', channels: ['*'], ttl: 1, now });
  t.strictSame(decode(all.split('.')[1]), { exp: 1_800_000_001, channels: ['*'] }, 'no methods claim: every method');
  t.notOk(/[+/=]/.test(token), 'base64url, unpadded');
});
