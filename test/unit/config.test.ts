/**
 * Command-line and environment configuration: defaults, precedence, validation
 * naming the option, and the help text derived from the options table.
 */
import os from 'node:os';
import t from 'tap';
import type { Test } from 'tap';
import { ConfigError, helpText, parseCommandLine } from '../../src/config/parse.js';
import { connectionBufferLimit, OPTIONS, shownDefault, type Config } from '../../src/config/options.js';

function defaultOf(option: (typeof OPTIONS)[number]): string | number {
  return typeof option.default === 'function' ? option.default() : option.default;
}

/** Checks that `fn` throws a ConfigError whose message names `source`. */
function throwsConfig(t: Test, fn: () => unknown, source: string, what: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof ConfigError)) {
    t.fail(`${what}: expected a ConfigError, got ${caught === undefined ? 'no error' : String(caught)}`);
    return;
  }
  t.ok(caught instanceof TypeError, `${what}: a TypeError`);
  t.equal(caught.code, 'COMET_ERR_INVALID_OPTION', `${what}: code`);
  t.match(caught.message, source, `${what}: names ${source}`);
}

/** A valid value different from the default, for every option. */
function otherValue(key: keyof Config): string {
  switch (key) {
    case 'host':
      return '127.0.0.1';
    case 'path':
      return '/comet';
    case 'logLevel':
      return 'debug';
    case 'corsOrigin':
      return 'https://example.com';
    case 'threads':
      return '3';
    case 'port':
      return '9090';
    case 'pollTimeout':
      return '45';
    case 'maxChannelBytes':
      return '512';
    case 'maxCallbackLength':
      return '64';
    case 'bufferSize':
      return '77';
    case 'maxMemory':
      return String(2 * 1024 * 1024);
    case 'maxYoungGeneration':
      return String(8 * 1024 * 1024);
    case 'shutdownTimeout':
      return '20';
    case 'connectionsInterval':
      return '60';
    case 'redis':
      return 'redis://127.0.0.1:6390,redis://127.0.0.1:6391';
    case 'redisPrefix':
      return 'app1:';
    case 'demo':
    case 'faultInjection':
      return 'on';
    case 'jsonp':
      return 'off';
    case 'pipelining':
      return 'ordered';
    case 'jsonpCallback':
      return 'cb_[0-9]+';
    case 'uwsBuild':
      return '20.51';
    case 'auth':
      return 'put';
    case 'authLeeway':
      return '30';
    case 'streamHeartbeat':
      return '20';
    case 'websocket':
      return 'off';
    default:
      return '12345';
  }
}

t.test('the options table is consistent', async (t) => {
  const keys = OPTIONS.map((o) => o.key);
  const flags = OPTIONS.map((o) => o.flag);
  const envs = OPTIONS.map((o) => o.env);
  t.equal(new Set(keys).size, keys.length, 'unique keys');
  t.equal(new Set(flags).size, flags.length, 'unique flags');
  t.equal(new Set(envs).size, envs.length, 'unique env vars');
  for (const option of OPTIONS) t.match(option.env, /^COMET_[A-Z_]+$/, option.env);
});

t.test('defaults with no flags and an empty environment', async (t) => {
  const { help, config } = parseCommandLine([], {});
  t.equal(help, false);
  t.same(Object.keys(config).sort(), OPTIONS.map((o) => o.key).sort(), 'every option has a value');
  for (const option of OPTIONS) t.equal(config[option.key], defaultOf(option), `${option.key} default`);
  t.equal(config.port, 8080);
  t.equal(config.host, '0.0.0.0');
  t.equal(config.path, '/');
  t.equal(config.pollTimeout, 30);
  t.equal(config.threads, os.availableParallelism());
});

t.test('environment variables are used', async (t) => {
  for (const option of OPTIONS) {
    const value = otherValue(option.key);
    const { config } = parseCommandLine([], { [option.env]: value });
    t.equal(config[option.key], option.kind === 'int' ? Number(value) : value, `${option.env}=${value}`);
    t.not(config[option.key], defaultOf(option), `${option.env} differs from the default`);
  }
});

t.test('flags are used, in both --flag value and --flag=value forms', async (t) => {
  for (const option of OPTIONS) {
    const value = otherValue(option.key);
    const expected = option.kind === 'int' ? Number(value) : value;
    t.equal(parseCommandLine([`--${option.flag}`, value], {}).config[option.key], expected, `--${option.flag} ${value}`);
    t.equal(parseCommandLine([`--${option.flag}=${value}`], {}).config[option.key], expected, `--${option.flag}=${value}`);
  }
});

t.test('flags beat environment variables', async (t) => {
  const { config } = parseCommandLine(['--port', '9001', '--log-level', 'warn'], { COMET_PORT: '9002', COMET_LOG_LEVEL: 'error', COMET_HOST: '::1' });
  t.equal(config.port, 9001);
  t.equal(config.logLevel, 'warn');
  t.equal(config.host, '::1', 'the environment still fills what flags leave out');
});

t.test('a valid flag wins even over an invalid environment value', async (t) => {
  const { config } = parseCommandLine(['--port', '9001'], { COMET_PORT: 'not a number' });
  t.equal(config.port, 9001);
});

t.test('only the given environment is read, not process.env', async (t) => {
  const saved = process.env.COMET_PORT;
  process.env.COMET_PORT = '1234';
  try {
    t.equal(parseCommandLine([], {}).config.port, 8080);
  } finally {
    if (saved === undefined) delete process.env.COMET_PORT;
    else process.env.COMET_PORT = saved;
  }
});

t.test('integer options: non-numbers and out-of-range values throw naming the option', async (t) => {
  for (const option of OPTIONS) {
    if (option.kind !== 'int') continue;
    for (const bad of ['abc', '-1', '1.5', '1e3', '0x10', '']) {
      throwsConfig(t, () => parseCommandLine([`--${option.flag}=${bad}`], {}), `--${option.flag}`, `--${option.flag}=${JSON.stringify(bad)}`);
      throwsConfig(t, () => parseCommandLine([], { [option.env]: bad }), option.env, `${option.env}=${JSON.stringify(bad)}`);
    }
    if (option.min > 0) {
      throwsConfig(t, () => parseCommandLine([`--${option.flag}`, String(option.min - 1)], {}), `--${option.flag}`, `--${option.flag} below min`);
    }
    t.equal(parseCommandLine([`--${option.flag}`, String(option.min)], {}).config[option.key], option.min, `--${option.flag} at min`);
    if (option.max !== undefined) {
      t.equal(parseCommandLine([`--${option.flag}`, String(option.max)], {}).config[option.key], option.max, `--${option.flag} at max`);
      throwsConfig(t, () => parseCommandLine([], { [option.env]: String(option.max! + 1) }), option.env, `${option.env} above max`);
    } else {
      throwsConfig(t, () => parseCommandLine([`--${option.flag}`, '9007199254740992'], {}), `--${option.flag}`, `--${option.flag} above 2^53-1`);
    }
  }
});

t.test('specific range checks', async (t) => {
  throwsConfig(t, () => parseCommandLine(['--port', '65536'], {}), '--port', 'port 65536');
  t.equal(parseCommandLine(['--port', '0'], {}).config.port, 0, 'port 0 picks a free port');
  throwsConfig(t, () => parseCommandLine(['--threads', '0'], {}), '--threads', 'threads 0');
  throwsConfig(t, () => parseCommandLine([], { COMET_POLL_TIMEOUT: '0' }), 'COMET_POLL_TIMEOUT', 'poll timeout 0');
  throwsConfig(t, () => parseCommandLine(['--max-memory', String(1024 * 1024 - 1)], {}), '--max-memory', 'max-memory below 1 MiB');
});

t.test('string options: choices and checks', async (t) => {
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
    t.equal(parseCommandLine(['--log-level', level], {}).config.logLevel, level);
  }
  for (const bad of ['INFO', 'verbose', '']) {
    throwsConfig(t, () => parseCommandLine(['--log-level', bad], {}), '--log-level', `log level ${JSON.stringify(bad)}`);
  }
  throwsConfig(t, () => parseCommandLine([], { COMET_LOG_LEVEL: 'loud' }), 'COMET_LOG_LEVEL', 'log level from env');
  for (const bad of ['comet', '/a?b', '/a#b', '/a b', '', '/*', '/comet/*', '/:channel', '/comet/:v']) {
    throwsConfig(t, () => parseCommandLine(['--path', bad], {}), '--path', `path ${JSON.stringify(bad)}`);
  }
  t.equal(parseCommandLine(['--path', '/comet/v1'], {}).config.path, '/comet/v1');
  t.equal(parseCommandLine(['--path', '/a:b'], {}).config.path, '/a:b', 'a colon inside a segment is no uWebSockets.js parameter');
  for (const bad of ['', 'a\r\nSet-Cookie: x=1', 'a\nb']) {
    throwsConfig(t, () => parseCommandLine([], { COMET_CORS_ORIGIN: bad }), 'COMET_CORS_ORIGIN', `cors ${JSON.stringify(bad)}`);
  }
  for (const bad of ['localhost:6379', 'http://127.0.0.1:6379', 'redis://a,', 'redis://a b']) {
    throwsConfig(t, () => parseCommandLine(['--redis', bad], {}), '--redis', `redis ${JSON.stringify(bad)}`);
  }
  t.equal(parseCommandLine([], { COMET_REDIS: '' }).config.redis, '', 'an empty COMET_REDIS keeps the in-memory engine');
  t.equal(parseCommandLine(['--redis', 'rediss://user:pw@db:6380/0'], {}).config.redis, 'rediss://user:pw@db:6380/0');
  for (const bad of ['a{b', 'a}', 'a b']) {
    throwsConfig(t, () => parseCommandLine(['--redis-prefix', bad], {}), '--redis-prefix', `prefix ${JSON.stringify(bad)}`);
  }
  t.equal(parseCommandLine(['--redis-prefix', ''], {}).config.redisPrefix, '', 'an empty prefix is allowed');
  for (const bad of ['on ', 'yes', '']) {
    throwsConfig(t, () => parseCommandLine(['--jsonp', bad], {}), '--jsonp', `jsonp ${JSON.stringify(bad)}`);
  }
  for (const bad of ['(', 'a)|(b', '[z-a]', '*', 'a\nb']) {
    throwsConfig(t, () => parseCommandLine(['--jsonp-callback', bad], {}), '--jsonp-callback', `jsonp-callback ${JSON.stringify(bad)}`);
    throwsConfig(t, () => parseCommandLine([], { COMET_JSONP_CALLBACK: bad }), 'COMET_JSONP_CALLBACK', `COMET_JSONP_CALLBACK ${JSON.stringify(bad)}`);
  }
  t.equal(parseCommandLine(['--jsonp-callback', 'jQuery\\d+_\\d+|app\\.on[A-Z]\\w*'], {}).config.jsonpCallback, 'jQuery\\d+_\\d+|app\\.on[A-Z]\\w*');
});

t.test('unknown flags, positionals and missing values throw', async (t) => {
  for (const argv of [['--nope'], ['--port', '80', '--colour', 'red'], ['extra'], ['--port'], ['-x']]) {
    let caught: unknown;
    try {
      parseCommandLine(argv, {});
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, `${JSON.stringify(argv)} throws a ConfigError`);
    t.ok(caught instanceof TypeError);
    t.match((caught as Error).message, /--help/, 'points at --help');
  }
});

t.test('--help and -h', async (t) => {
  t.equal(parseCommandLine(['--help'], {}).help, true);
  t.equal(parseCommandLine(['-h'], {}).help, true);
  t.equal(parseCommandLine(['--port', '1', '--help'], {}).config.port, 1, 'other flags still parsed');
});

t.test('helpText lists every option with its env var and default', async (t) => {
  const text = helpText();
  t.ok(text.endsWith('\n'));
  t.match(text, /--help/);
  const lines = text.split('\n');
  for (const option of OPTIONS) {
    const line = lines.find((l) => l.trimStart().startsWith(`--${option.flag} `));
    t.ok(line, `--${option.flag} listed`);
    t.ok(line?.includes(option.env), `--${option.flag} shows ${option.env}`);
    t.ok(text.includes(option.describe), `--${option.flag} description`);
    t.ok(text.includes(`(default: ${shownDefault(option)})`), `--${option.flag} default`);
  }
});

t.test('defaults are shown as set, computed ones by what they stand for', async (t) => {
  const shown = (flag: string) => shownDefault(OPTIONS.find((o) => o.flag === flag)!);
  t.equal(shown('port'), '8080');
  t.equal(shown('cors-origin'), '*');
  t.equal(shown('threads'), 'available parallelism');
  t.equal(shown('redis'), '(empty)');
});

t.test('--max-connection-buffer 0 stands for four answers of --max-answer-bytes', async (t) => {
  t.equal(connectionBufferLimit(parseCommandLine([], {}).config), 4 * 1024 * 1024);
  t.equal(connectionBufferLimit(parseCommandLine(['--max-answer-bytes', '8388608'], {}).config), 32 * 1024 * 1024, 'it follows a larger answer size');
  t.equal(connectionBufferLimit(parseCommandLine(['--max-connection-buffer', '65536'], {}).config), 65536, 'a value given is taken as it is');
});

t.test('helpText separates every flag from its env var by at least one space', async (t) => {
  const lines = helpText().split('\n');
  for (const option of OPTIONS) {
    const line = lines.find((l) => l.trimStart().startsWith(`--${option.flag} `)) ?? '';
    const separated = new RegExp(`^ +--${option.flag} <value> +${option.env}$`).test(line);
    t.ok(separated, `--${option.flag}: ${JSON.stringify(line)}`);
  }
});
