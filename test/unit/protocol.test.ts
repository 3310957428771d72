/**
 * The protocol layer without a server: error codes, parameter reading and
 * validation, JSONP safety and the answer bodies.
 */
import vm from 'node:vm';
import t from 'tap';
import type { Test } from 'tap';
import { CometError, ERROR_CODE_LIST, ERROR_CODES, type ErrorCode } from '../../src/protocol/errors.js';
import { MAX_TIME, parseProtocolRequest, readParams, type ParamLimits, type RawParams } from '../../src/protocol/params.js';
import { callbackPattern, isValidCallback, RESERVED_CALLBACK_SEGMENTS, reservedSegment, scriptSafeJson, wrapJsonp } from '../../src/protocol/jsonp.js';
import { errorAnswer, messagesAnswer, timeAnswer } from '../../src/protocol/respond.js';

/** Runs `fn` and checks that it throws a CometError with this code and status. */
function throwsComet(t: Test, fn: () => unknown, code: ErrorCode, status: number, what: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof CometError)) {
    t.fail(`${what}: expected a CometError ${code}, got ${caught === undefined ? 'no error' : String(caught)}`);
    return;
  }
  t.equal(caught.code, code, `${what}: code`);
  t.equal(caught.statusCode, status, `${what}: status`);
}

/** JSON.stringify for assertion names, with U+2028/U+2029 escaped (raw ones would break the TAP stream). */
function show(text: string): string {
  return JSON.stringify(text).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

// ---- errors ------------------------------------------------------------------
const EXPECTED_STATUS: Record<ErrorCode, number> = {
  COMET_ERR_BAD_METHOD: 400,
  COMET_ERR_BAD_CHANNEL: 400,
  COMET_ERR_MISSING_MESSAGE: 400,
  COMET_ERR_BAD_TIME: 400,
  COMET_ERR_BAD_TIMEOUT: 400,
  COMET_ERR_BAD_CALLBACK: 400,
  COMET_ERR_BAD_ENCODING: 400,
  COMET_ERR_BAD_FRAMING: 400,
  COMET_ERR_BAD_FRAME: 400,
  COMET_ERR_UNAUTHORIZED: 401,
  COMET_ERR_FORBIDDEN: 403,
  COMET_ERR_NOT_FOUND: 404,
  COMET_ERR_HTTP_METHOD: 405,
  COMET_ERR_MESSAGE_TOO_LARGE: 413,
  COMET_ERR_BODY_TOO_LARGE: 413,
  COMET_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  COMET_ERR_RATE_LIMITED: 429,
  COMET_ERR_INTERNAL: 500,
  COMET_ERR_TOO_MANY_WAITING: 503,
  COMET_ERR_SHUTTING_DOWN: 503,
  COMET_ERR_STORE_UNAVAILABLE: 503,
};

t.test('errors: the code list is exactly the documented codes', async (t) => {
  t.same([...ERROR_CODE_LIST].sort(), Object.keys(EXPECTED_STATUS).sort());
  t.same(ERROR_CODES, EXPECTED_STATUS);
});

t.test('errors: every CometError carries its code, status, name and message', async (t) => {
  for (const code of ERROR_CODE_LIST) {
    const err = new CometError(code, `text for ${code}`);
    t.ok(err instanceof Error, `${code} is an Error`);
    t.equal(err.name, 'CometError');
    t.equal(err.code, code);
    t.equal(err.statusCode, EXPECTED_STATUS[code], `${code} -> ${EXPECTED_STATUS[code]}`);
    t.equal(err.message, `text for ${code}`);
  }
});

// ---- readParams --------------------------------------------------------------
t.test('readParams: reads the known parameters', async (t) => {
  t.same(readParams('method=get&channel=room&time=5&timeout=10&callback=cb'), {
    method: 'get',
    channel: 'room',
    time: '5',
    timeout: '10',
    callback: 'cb',
  });
  t.same(readParams('method=put&channel=a&message=hello'), { method: 'put', channel: 'a', message: 'hello' });
  t.same(readParams(''), {});
  t.same(readParams('&&&'), {});
  t.same(readParams('channel=a&'), { channel: 'a' });
});

t.test('readParams: reads the token parameter, for clients that cannot send a header', async (t) => {
  t.same(readParams('method=get&channel=a&token=x.y.z'), { method: 'get', channel: 'a', token: 'x.y.z' });
});

t.test('readParams: the first occurrence wins', async (t) => {
  t.same(readParams('channel=a&channel=b'), { channel: 'a' });
  t.same(readParams('message=first&message=second&message=third'), { message: 'first' });
  t.same(readParams('channel=&channel=b'), { channel: '' }, 'an empty first value still wins');
  t.same(readParams('channel&channel=b'), { channel: '' }, 'a valueless first occurrence still wins');
  t.same(readParams('chan%6Eel=x&channel=y'), { channel: 'x' }, 'names are decoded before comparing');
});

t.test('readParams: + is a space and percent-escapes are decoded', async (t) => {
  t.equal(readParams('message=a+b+c').message, 'a b c');
  t.equal(readParams('message=a%2Bb').message, 'a+b', '%2B is a literal plus');
  t.equal(readParams('message=%20%25%26%3D').message, ' %&=');
  t.equal(readParams('message=caf%C3%A9').message, 'café', '2-byte UTF-8');
  t.equal(readParams('message=%E2%82%AC').message, '€', '3-byte UTF-8');
  t.equal(readParams('message=%F0%9F%98%80').message, '😀', '4-byte UTF-8');
  t.equal(readParams('message=%e2%82%ac').message, '€', 'lower-case hex');
  t.equal(readParams('message=a=b=c').message, 'a=b=c', 'only the first = separates name and value');
  t.equal(readParams('channel=%26&message=x').channel, '&', 'an encoded & stays in the value');
  t.equal(readParams('message=caf\u00e9').message, 'caf\u00e9', 'raw non-ASCII passes through');
});

t.test('readParams: malformed escapes or invalid UTF-8 throw COMET_ERR_BAD_ENCODING', async (t) => {
  const bad = [
    'message=%zz',
    'message=%',
    'message=abc%2',
    'message=%C3%28', // invalid continuation byte
    'message=%E2%82', // truncated sequence
    'message=%FF',
    'message=%ED%A0%80', // an encoded surrogate
    'channel=ok&message=%G0',
    'm%zzethod=get', // in a name
    'message=\uFFFD', // regression: raw invalid UTF-8 that uWS decoded to U+FFFD was stored mangled
  ];
  for (const text of bad) throwsComet(t, () => readParams(text), 'COMET_ERR_BAD_ENCODING', 400, text);
});

t.test('readParams: unknown parameters are ignored', async (t) => {
  const params = readParams('foo=bar&method=get&_=123&channel=c&Channel=C');
  t.same(params, { method: 'get', channel: 'c' });
  t.notOk(Object.prototype.hasOwnProperty.call(params, 'foo'));
  const proto = readParams('__proto__=x&constructor=y&toString=z&channel=c');
  t.same(proto, { channel: 'c' });
  t.equal(Object.getPrototypeOf(proto), Object.prototype, 'no prototype pollution');
  t.equal(typeof proto.toString, 'function');
});

t.test('readParams: empty values and parameters without =', async (t) => {
  t.same(readParams('message='), { message: '' });
  t.same(readParams('message'), { message: '' });
  t.same(readParams('message&channel=a'), { message: '', channel: 'a' });
  t.same(readParams('channel=a&message'), { channel: 'a', message: '' });
  t.same(readParams('=x&channel=a'), { channel: 'a' }, 'an empty name is unknown');
});

t.test('regression: readParams rescanned to the end for "=" after every parameter (quadratic)', async (t) => {
  // Counts the characters String.prototype.indexOf walks over on the input itself; a
  // linear parser walks each character a bounded number of times.
  const scannedWhileParsing = (input: string): { scanned: number; params: unknown } => {
    let scanned = 0;
    const original = String.prototype.indexOf;
    String.prototype.indexOf = function (this: string, search: string, position?: number): number {
      const result = original.call(this, search, position);
      if (this === input) scanned += (result === -1 ? this.length : result) - Math.min(Math.max(0, position ?? 0), this.length);
      return result;
    };
    try {
      const params = readParams(input);
      return { scanned, params };
    } finally {
      String.prototype.indexOf = original;
    }
  };
  const check = (input: string, label: string) => {
    const { scanned } = scannedWhileParsing(input);
    t.ok(scanned <= 4 * input.length, `${label}: ${scanned} characters scanned for ${input.length} of input`);
  };
  check('&'.repeat(20_000), '20,000 empty parameters');
  check('a&'.repeat(10_000), '10,000 valueless parameters');
  check('a&'.repeat(10_000) + 'channel=x', 'valueless parameters then one with a value');
  const input = 'channel=a&message=b&'.repeat(1000);
  const { scanned, params } = scannedWhileParsing(input);
  t.same(params, { channel: 'a', message: 'b' });
  t.ok(scanned > 0 && scanned <= 4 * input.length, `well-formed input: ${scanned} characters scanned (the count is live)`);
});

// ---- parseProtocolRequest ----------------------------------------------------
const LIMITS: ParamLimits = { maxChannelBytes: 8, maxMessageBytes: 10, maxCallbackLength: 16, pollTimeout: 30, jsonp: 'on', jsonpCallback: '' };
const parse = (raw: RawParams, limits: ParamLimits = LIMITS) => parseProtocolRequest(raw, limits);

t.test('parseProtocolRequest: method must be put, get or sync', async (t) => {
  throwsComet(t, () => parse({ channel: 'a' }), 'COMET_ERR_BAD_METHOD', 400, 'missing method');
  for (const method of ['', 'PUT', 'Get', 'post', 'delete', 'put ', 'subscribe']) {
    throwsComet(t, () => parse({ method, channel: 'a', message: 'x' }), 'COMET_ERR_BAD_METHOD', 400, JSON.stringify(method));
  }
});

t.test('parseProtocolRequest: channel is required and limited in UTF-8 bytes', async (t) => {
  throwsComet(t, () => parse({ method: 'sync' }), 'COMET_ERR_BAD_CHANNEL', 400, 'missing channel');
  throwsComet(t, () => parse({ method: 'sync', channel: '' }), 'COMET_ERR_BAD_CHANNEL', 400, 'empty channel');
  const fits = ['abcdefgh', 'éééé', '€€a', '😀😀', 'x'];
  for (const channel of fits) {
    t.same(parse({ method: 'sync', channel }), { method: 'sync', channel, callback: undefined }, `${channel} fits in 8 bytes`);
  }
  const tooLong = ['abcdefghi', 'ééééa', '€€€', '😀😀a', 'a😀😀'];
  for (const channel of tooLong) {
    throwsComet(t, () => parse({ method: 'sync', channel }), 'COMET_ERR_BAD_CHANNEL', 400, `${channel} is over 8 bytes`);
  }
});

t.test('parseProtocolRequest: put requires a message limited in UTF-8 bytes', async (t) => {
  throwsComet(t, () => parse({ method: 'put', channel: 'a' }), 'COMET_ERR_MISSING_MESSAGE', 400, 'missing message');
  t.same(
    parse({ method: 'put', channel: 'a', message: '' }),
    { method: 'put', channel: 'a', message: '', bytes: 0, callback: undefined },
    'an empty message is allowed',
  );
  for (const message of ['0123456789', 'ééééé', '€€€a', '😀😀ab', '😀€éa']) {
    t.same(
      parse({ method: 'put', channel: 'a', message }),
      { method: 'put', channel: 'a', message, bytes: 10, callback: undefined },
      `${message} is exactly 10 bytes`,
    );
  }
  for (const message of ['0123456789a', 'éééééa', '€€€é', '😀😀abc', '😀😀😀']) {
    throwsComet(t, () => parse({ method: 'put', channel: 'a', message }), 'COMET_ERR_MESSAGE_TOO_LARGE', 413, `${message} is over 10 bytes`);
  }
});

t.test('parseProtocolRequest: sync', async (t) => {
  t.same(parse({ method: 'sync', channel: 'room' }), { method: 'sync', channel: 'room', callback: undefined });
  t.same(parse({ method: 'sync', channel: 'room', callback: 'cb' }), { method: 'sync', channel: 'room', callback: 'cb' });
});

t.test('parseProtocolRequest: get defaults to since -1 and the poll timeout', async (t) => {
  t.same(parse({ method: 'get', channel: 'room' }), { method: 'get', channel: 'room', since: -1, timeout: 30, callback: undefined });
});

t.test('parseProtocolRequest: get with valid time values', async (t) => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['1', 1],
    ['007', 7],
    ['1700000000000000', 1700000000000000],
    ['9007199254740991', MAX_TIME],
  ];
  for (const [time, since] of cases) {
    const request = parse({ method: 'get', channel: 'a', time });
    t.equal(request.method === 'get' && request.since, since, `time=${time}`);
  }
  t.equal(MAX_TIME, 2 ** 53 - 1);
});

const NOT_AN_INTEGER = ['-1', '1.5', '1e3', '', ' 1', '1 ', '+1', '0x10', 'abc', '9007199254740992', '99999999999999999', 'Infinity', 'NaN', '١'];

t.test('parseProtocolRequest: time must be a non-negative integer up to 2^53-1', async (t) => {
  for (const time of NOT_AN_INTEGER) {
    throwsComet(t, () => parse({ method: 'get', channel: 'a', time }), 'COMET_ERR_BAD_TIME', 400, `time=${JSON.stringify(time)}`);
  }
});

t.test('parseProtocolRequest: timeout must be a non-negative integer up to 2^53-1', async (t) => {
  for (const timeout of NOT_AN_INTEGER) {
    throwsComet(t, () => parse({ method: 'get', channel: 'a', timeout }), 'COMET_ERR_BAD_TIMEOUT', 400, `timeout=${JSON.stringify(timeout)}`);
  }
});

t.test('parseProtocolRequest: timeout is clamped to the poll timeout', async (t) => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['5', 5],
    ['30', 30],
    ['31', 30],
    ['3600', 30],
    ['9007199254740991', 30],
  ];
  for (const [timeout, expected] of cases) {
    const request = parse({ method: 'get', channel: 'a', timeout });
    t.equal(request.method === 'get' && request.timeout, expected, `timeout=${timeout}`);
  }
  const short = parse({ method: 'get', channel: 'a' }, { ...LIMITS, pollTimeout: 3 });
  t.equal(short.method === 'get' && short.timeout, 3, 'default follows pollTimeout');
});

t.test('parseProtocolRequest: callback must be a valid identifier path within the length limit', async (t) => {
  t.equal(parse({ method: 'get', channel: 'a', callback: 'app.onComet' }).callback, 'app.onComet');
  t.equal(parse({ method: 'get', channel: 'a', callback: 'x'.repeat(16) }).callback, 'x'.repeat(16), 'exactly the limit');
  throwsComet(t, () => parse({ method: 'get', channel: 'a', callback: 'x'.repeat(17) }), 'COMET_ERR_BAD_CALLBACK', 400, 'over the limit');
  for (const callback of ['alert(1)', '', 'a-b', 'a..b']) {
    throwsComet(t, () => parse({ method: 'sync', channel: 'a', callback }), 'COMET_ERR_BAD_CALLBACK', 400, JSON.stringify(callback));
  }
  throwsComet(t, () => parse({ method: 'put', channel: 'a', message: 'x', callback: 'a(' }), 'COMET_ERR_BAD_CALLBACK', 400, 'put too');
});

t.test('parseProtocolRequest: reserved segments, the allow pattern and --jsonp off', async (t) => {
  const wide = { ...LIMITS, maxCallbackLength: 128 };
  for (const callback of ['__proto__', 'constructor.constructor', 'document.write', 'location.assign', 'app.opener.x', 'import']) {
    for (const method of ['put', 'get', 'sync'] as const) {
      throwsComet(t, () => parse({ method, channel: 'a', message: 'x', callback }, wide), 'COMET_ERR_BAD_CALLBACK', 400, `${method} ${callback}`);
    }
  }
  t.equal(parse({ method: 'get', channel: 'a', callback: 'Document' }, wide).callback, 'Document', 'case variants are other names');
  const pattern = { ...wide, jsonpCallback: 'cb_[0-9]+' };
  t.equal(parse({ method: 'sync', channel: 'a', callback: 'cb_7' }, pattern).callback, 'cb_7', 'the pattern admits cb_7');
  for (const callback of ['cb_x', 'xcb_7', 'cb_7x', 'app.onComet']) {
    throwsComet(t, () => parse({ method: 'sync', channel: 'a', callback }, pattern), 'COMET_ERR_BAD_CALLBACK', 400, `pattern refuses ${callback}`);
  }
  const everything = { ...wide, jsonpCallback: '.*' };
  t.equal(parse({ method: 'sync', channel: 'a', callback: 'app.onComet' }, everything).callback, 'app.onComet');
  throwsComet(t, () => parse({ method: 'sync', channel: 'a', callback: 'window.top' }, everything), 'COMET_ERR_BAD_CALLBACK', 400, 'reserved despite .*');
  throwsComet(t, () => parse({ method: 'sync', channel: 'a', callback: 'a(' }, everything), 'COMET_ERR_BAD_CALLBACK', 400, 'grammar despite .*');
  const off = { ...wide, jsonp: 'off' };
  for (const method of ['put', 'get', 'sync'] as const) {
    throwsComet(t, () => parse({ method, channel: 'a', message: 'x', callback: 'cb' }, off), 'COMET_ERR_BAD_CALLBACK', 400, `${method}: JSONP off`);
  }
  t.equal(parse({ method: 'sync', channel: 'a' }, off).callback, undefined, 'JSONP off: no callback is fine');
});

t.test('parseProtocolRequest: works end to end from readParams', async (t) => {
  const raw = readParams('method=put&channel=r%C3%A9union&message=hello+%F0%9F%98%80&foo=1');
  t.same(parse(raw, { ...LIMITS, maxMessageBytes: 64 }), { method: 'put', channel: 'réunion', message: 'hello 😀', bytes: 10, callback: undefined });
});

// ---- jsonp ---------------------------------------------------------------------
t.test('jsonp: isValidCallback accepts identifier paths', async (t) => {
  for (const name of ['cb', 'jQuery123_456', 'app.onComet', '$', '_a.$b', '_', 'a.b.c', 'A1', 'x'.repeat(200)]) {
    t.ok(isValidCallback(name), name);
  }
});

t.test('jsonp: isValidCallback rejects anything else', async (t) => {
  for (const name of ['alert(1)', 'a..b', '1abc', 'a-b', '<script>', '', 'a.', '.a', 'a[0]', 'a b', 'a;b', 'a.1b', 'é', 'a\nb', 'cb//', 'a\u2028b']) {
    t.notOk(isValidCallback(name), show(name));
  }
});

t.test('jsonp: reservedSegment finds a reserved name in any segment, exactly', async (t) => {
  t.ok(RESERVED_CALLBACK_SEGMENTS.size > 150, `the list holds ${RESERVED_CALLBACK_SEGMENTS.size} names`);
  for (const name of RESERVED_CALLBACK_SEGMENTS) {
    t.ok(isValidCallback(name), `${name} is identifier-shaped (else the grammar already refuses it)`);
    for (const path of [name, `${name}.x`, `a.${name}`, `a.${name}.b`, `a.b.${name}`]) t.equal(reservedSegment(path), name, path);
  }
  t.equal(reservedSegment('opener.document.body.firstElementChild.click'), 'opener', 'the first reserved segment is named');
  for (const name of ['cb', 'jQuery123_456', 'app.onComet', 'A.B.C.D', 'Document', 'app.windowed', 'documentReady', '__jp0', 'a.b.c']) {
    t.equal(reservedSegment(name), undefined, name);
  }
});

t.test('jsonp: callbackPattern compiles once and anchors the whole callback', async (t) => {
  t.equal(callbackPattern(''), undefined, 'empty: no pattern');
  const p = callbackPattern('cb_[0-9]+');
  t.equal(callbackPattern('cb_[0-9]+'), p, 'the same source: the same RegExp, not a new one');
  t.ok(p?.test('cb_12'));
  t.notOk(p?.test('xcb_12'), 'anchored at the start');
  t.notOk(p?.test('cb_12x'), 'anchored at the end');
  t.notOk(callbackPattern('a|b')?.test('ab'), 'an alternation stays inside the anchors');
  t.not(callbackPattern('x'), p, 'another source compiles anew');
});

t.test('jsonp: scriptSafeJson escapes U+2028 and U+2029 and round-trips', async (t) => {
  const samples = [
    'plain',
    '',
    'line\u2028sep',
    'para\u2029sep',
    '\u2028\u2029\u2028',
    'quote " backslash \\ newline \n tab \t',
    '</script>',
    '😀 é €',
    '\u0000\u001f',
  ];
  for (const text of samples) {
    const json = scriptSafeJson(text);
    t.notOk(/[\u2028\u2029]/.test(json), `${show(text)}: no raw separators`);
    t.equal(JSON.parse(json), text, `${show(text)}: JSON.parse gives it back`);
    t.equal(vm.runInNewContext(`(${json})`), text, `${show(text)}: evaluates as script to it`);
  }
  t.equal(scriptSafeJson('a\u2028b\u2029c'), '"a\\u2028b\\u2029c"');
  t.equal(scriptSafeJson('hello "you"'), JSON.stringify('hello "you"'), 'otherwise plain JSON.stringify');
});

t.test('jsonp: wrapJsonp calls the callback with the answer object', async (t) => {
  const answer = messagesAnswer(42, [scriptSafeJson('hi'), scriptSafeJson('a\u2028b'), scriptSafeJson('</script>')]);
  const script = wrapJsonp('cb', answer);
  t.ok(script.startsWith('/**/cb('), 'starts with the comment then the call');
  t.ok(script.endsWith(');'));
  const calls: unknown[] = [];
  vm.runInNewContext(script, { cb: (value: unknown) => calls.push(JSON.stringify(value)) });
  t.same(calls, [JSON.stringify({ time: 42, messages: ['hi', 'a\u2028b', '</script>'] })]);

  const seen: unknown[] = [];
  const context = { app: { onComet: (value: unknown) => seen.push(JSON.stringify(value)) } };
  vm.runInNewContext(wrapJsonp('app.onComet', timeAnswer(7)), context);
  t.same(seen, [JSON.stringify({ time: 7 })], 'a dotted callback path');

  const errors: unknown[] = [];
  vm.runInNewContext(wrapJsonp('$', errorAnswer(new CometError('COMET_ERR_BAD_TIME', 'bad "time"'))), { $: (v: unknown) => errors.push(JSON.stringify(v)) });
  t.same(errors, [JSON.stringify({ error: 'bad "time"', code: 'COMET_ERR_BAD_TIME' })]);
});

// ---- answers -------------------------------------------------------------------
t.test('answers: timeAnswer', async (t) => {
  t.equal(timeAnswer(123), '{"time":123}');
  t.same(JSON.parse(timeAnswer(0)), { time: 0 });
  t.same(JSON.parse(timeAnswer(MAX_TIME)), { time: MAX_TIME });
  t.same(JSON.parse(timeAnswer(1_700_000_000_123_456)), { time: 1_700_000_000_123_456 });
});

t.test('answers: messagesAnswer', async (t) => {
  const texts = ['one', 'two "quoted"', 'three\u2028', '', '😀'];
  const bodies = texts.map(scriptSafeJson);
  t.same(JSON.parse(messagesAnswer(9, bodies)), { time: 9, messages: texts });
  t.same(JSON.parse(messagesAnswer(9, [])), { time: 9, messages: [] });
  t.same(JSON.parse(messagesAnswer(9, bodies, 1, 3)), { time: 9, messages: texts.slice(1, 3) }, 'start and end');
  t.same(JSON.parse(messagesAnswer(9, bodies, 4)), { time: 9, messages: texts.slice(4) }, 'start only');
  t.same(JSON.parse(messagesAnswer(9, bodies, 2, 2)), { time: 9, messages: [] }, 'empty range');
  t.same(JSON.parse(messagesAnswer(9, bodies, 0, 1, true)), { time: 9, messages: ['one'], missed: true }, 'missed');
  t.same(JSON.parse(messagesAnswer(9, [], 0, 0, true)), { time: 9, messages: [], missed: true }, 'missed with no messages');
  t.notOk('missed' in JSON.parse(messagesAnswer(9, bodies, 0, 5, false)), 'no missed key when not missed');
  // bodies are any JSON values, not only strings
  t.same(JSON.parse(messagesAnswer(1, ['{"a":1}', '[1,2]', 'null', '3'])), { time: 1, messages: [{ a: 1 }, [1, 2], null, 3] });
});

t.test('answers: errorAnswer is valid JSON for every code and awkward messages', async (t) => {
  for (const code of ERROR_CODE_LIST) {
    const message = `problem with "${code}" \\ \n \u2028 </script>`;
    t.same(JSON.parse(errorAnswer(new CometError(code, message))), { error: message, code }, code);
  }
});
