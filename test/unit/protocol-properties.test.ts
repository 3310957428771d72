/**
 * Property-based tests of parameter parsing, percent-decoding and JSONP
 * callbacks (issue 13 item 6), without a server: fast-check generates
 * arbitrary strings and valid requests, and each property is checked against
 * an oracle written independently of src/ (Buffer for UTF-8, URLSearchParams
 * and encodeURIComponent for encoding, plain loops for the identifier grammar).
 * The seed is printed; COMET_FUZZ_SEED replays it (test/helpers/fuzz.ts).
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { CometError, type ErrorCode } from '../../src/protocol/errors.js';
import {
  callbackPattern,
  compileCallbackPattern,
  isValidCallback,
  RESERVED_CALLBACK_SEGMENTS,
  reservedSegment,
  scriptSafeJson,
} from '../../src/protocol/jsonp.js';
import { overlayParams, type ParamLimits, parseProtocolRequest, type ProtocolRequest, type RawParams, readParams } from '../../src/protocol/params.js';
import {
  announceSeed,
  callbackArb,
  checkProperty,
  type Encoding,
  encode,
  encodingArb,
  identifier,
  KNOWN_PARAMS as KNOWN,
  type KnownParam as Known,
  soup,
  unicode,
} from '../helpers/fuzz.js';

announceSeed(t);

const RESERVED = [...RESERVED_CALLBACK_SEGMENTS];

// ---- oracles, independent of src/ ------------------------------------------------

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** No lone surrogate: UTF-8 encoding keeps it. */
const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;

function identStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36;
}
function identPart(c: number): boolean {
  return identStart(c) || (c >= 48 && c <= 57);
}
/** The contract's callback grammar by hand: ASCII identifiers joined by single dots. */
function isIdentifierPath(s: string): boolean {
  if (s === '') return false;
  for (const segment of s.split('.')) {
    if (segment === '' || !identStart(segment.charCodeAt(0))) return false;
    for (let i = 1; i < segment.length; i++) if (!identPart(segment.charCodeAt(i))) return false;
  }
  return true;
}
const firstReserved = (s: string) => s.split('.').find((seg) => RESERVED_CALLBACK_SEGMENTS.has(seg));

/** Refused the way the contract says bad input is: a CometError with a 4xx status (and this code when given). */
function refusedWith4xx(err: unknown, code?: ErrorCode): boolean {
  if (!(err instanceof CometError)) throw err; // anything else fails the property, with its stack
  return err.statusCode >= 400 && err.statusCode <= 499 && (code === undefined || err.code === code);
}

/** Whatever parseProtocolRequest accepts satisfies the contract, checked against the raw parameters. */
function acceptable(req: ProtocolRequest, raw: RawParams, limits: ParamLimits): boolean {
  if (req.method !== raw.method || req.channel !== raw.channel || req.channel === '' || bytes(req.channel) > limits.maxChannelBytes) return false;
  if (req.callback !== raw.callback) return false;
  if (req.callback !== undefined) {
    if (limits.jsonp === 'off' || req.callback.length > limits.maxCallbackLength) return false;
    if (!isIdentifierPath(req.callback) || firstReserved(req.callback) !== undefined) return false;
  }
  switch (req.method) {
    case 'put':
      return req.message === raw.message && bytes(req.message) <= limits.maxMessageBytes;
    case 'sync':
      return true;
    case 'get':
    case 'events': {
      const integer = (s: string) => /^[0-9]+$/.test(s) && Number(s) <= Number.MAX_SAFE_INTEGER;
      if (raw.time === undefined ? req.since !== -1 : !integer(raw.time) || req.since !== Number(raw.time)) return false;
      const asked = raw.timeout === undefined ? limits.pollTimeout : integer(raw.timeout) ? Number(raw.timeout) : NaN;
      if (Number.isNaN(asked)) return false;
      return req.method === 'events' || req.timeout === Math.min(asked, limits.pollTimeout);
    }
  }
}

// ---- arbitraries -----------------------------------------------------------------

const limitsArb: fc.Arbitrary<ParamLimits> = fc.record({
  maxChannelBytes: fc.integer({ min: 1, max: 64 }),
  maxMessageBytes: fc.integer({ min: 1, max: 64 }),
  maxCallbackLength: fc.integer({ min: 1, max: 32 }),
  pollTimeout: fc.integer({ min: 1, max: 3600 }),
  jsonp: fc.constantFrom('on', 'on', 'on', 'off'),
  jsonpCallback: fc.constantFrom('', '', '', 'cb_[0-9]+', '[a-z.]+', 'app\\.on[A-Z]\\w*'),
});

interface Pair {
  name: string;
  value: string | undefined; // undefined: the name alone, without '='
  nameHow: Encoding;
  valueHow: Encoding;
  mix: number;
}
const knownName = fc.constantFrom<Known>(...KNOWN);
/** A name that is none of the known parameters once decoded. */
const unknownName = unicode(8).filter((n) => !(KNOWN as readonly string[]).includes(n));
const pairArb = (name: fc.Arbitrary<string>): fc.Arbitrary<Pair> =>
  fc.record({
    name,
    value: fc.option(unicode(24), { nil: undefined, freq: 8 }),
    nameHow: encodingArb,
    valueHow: encodingArb,
    mix: fc.nat(),
  });
/** A parameter string: known and unknown pairs in any order, duplicates included, with stray '&'. */
const pairsArb = fc.array(fc.oneof(pairArb(knownName), pairArb(unknownName)), { maxLength: 14 });

function serialize(pairs: Pair[], strayAmpersands: number): string {
  const parts = pairs.map((p) => {
    const name = encode(p.name, p.nameHow, p.mix, true);
    return p.value === undefined ? name : `${name}=${encode(p.value, p.valueHow, p.mix + 1, false)}`;
  });
  for (let i = 0; i < strayAmpersands; i++) parts.splice((i * 7) % (parts.length + 1), 0, '');
  return parts.join('&');
}

/** The expected reading: for each known name, its first occurrence (a name alone reads as ''). */
function firstOccurrences(pairs: Pair[]): RawParams {
  const out: RawParams = {};
  for (const p of pairs) {
    if ((KNOWN as readonly string[]).includes(p.name) && out[p.name as Known] === undefined) out[p.name as Known] = p.value ?? '';
  }
  return out;
}

function sameParams(actual: RawParams, expected: RawParams): boolean {
  return KNOWN.every((k) => actual[k] === expected[k]);
}

// ---- readParams, overlayParams, parseProtocolRequest ------------------------------

t.test('property: readParams on any string returns the seven parameters or refuses with a 4xx CometError, never anything else', async (t) => {
  checkProperty(
    t,
    'readParams(any string)',
    fc.property(soup, (s) => {
      let params: RawParams;
      try {
        params = readParams(s);
      } catch (err) {
        return refusedWith4xx(err, 'COMET_ERR_BAD_ENCODING');
      }
      if (Object.keys(params).sort().join() !== [...KNOWN].sort().join()) return false;
      if (!KNOWN.every((k) => params[k] === undefined || typeof params[k] === 'string')) return false;
      // A well-formed input decodes to well-formed values (percent-decoding refuses encoded surrogates).
      return !wellFormed(s) || KNOWN.every((k) => params[k] === undefined || wellFormed(params[k]!));
    }),
    { numRuns: 3000, salt: 1 },
  );
});

t.test(
  'property: parseProtocolRequest on whatever readParams reads either refuses with a 4xx CometError or returns a request within every limit',
  async (t) => {
    checkProperty(
      t,
      'parseProtocolRequest(readParams(any string))',
      fc.property(soup, limitsArb, (s, limits) => {
        let raw: RawParams;
        try {
          raw = readParams(s);
        } catch (err) {
          return refusedWith4xx(err);
        }
        try {
          return acceptable(parseProtocolRequest(raw, limits), raw, limits);
        } catch (err) {
          return refusedWith4xx(err);
        }
      }),
      { numRuns: 3000, salt: 2 },
    );
    // Raw parameters straight from arbitrary strings, where readParams would never produce them (lone surrogates, U+FFFD).
    const rawArb = fc.record(Object.fromEntries(KNOWN.map((k) => [k, fc.option(soup, { nil: undefined })])) as Record<Known, fc.Arbitrary<string | undefined>>);
    checkProperty(
      t,
      'parseProtocolRequest(arbitrary raw parameters)',
      fc.property(rawArb, limitsArb, (raw, limits) => {
        try {
          return acceptable(parseProtocolRequest(raw, limits), raw, limits);
        } catch (err) {
          return refusedWith4xx(err);
        }
      }),
      { numRuns: 3000, salt: 3 },
    );
  },
);

t.test('property: arbitrary Unicode values, encoded as a client would, read back exactly, and the first occurrence wins', async (t) => {
  checkProperty(
    t,
    'readParams(serialize(pairs)) = first occurrences',
    fc.property(pairsArb, fc.nat({ max: 3 }), (pairs, stray) => sameParams(readParams(serialize(pairs, stray)), firstOccurrences(pairs))),
    { numRuns: 3000, salt: 4 },
  );
  checkProperty(
    t,
    'overlayParams(query, body): the body wins where it has a parameter, the query fills in the rest',
    fc.property(pairsArb, pairsArb, (query, body) => {
      const q = firstOccurrences(query);
      const b = firstOccurrences(body);
      const expected = Object.fromEntries(KNOWN.map((k) => [k, b[k] ?? q[k]])) as RawParams;
      return sameParams(overlayParams(readParams(serialize(query, 0)), readParams(serialize(body, 1))), expected);
    }),
    { numRuns: 1500, salt: 5 },
  );
  checkProperty(
    t,
    'a later duplicate never replaces the first value, whatever it holds',
    fc.property(knownName, unicode(16), soup, (name, first, later) => {
      const text = `${name}=${encodeURIComponent(first)}&${name}=${later}`;
      try {
        return readParams(text)[name] === first;
      } catch (err) {
        // The later value is still decoded (a name must be read to be compared), so it may be refused as a whole.
        return refusedWith4xx(err, 'COMET_ERR_BAD_ENCODING');
      }
    }),
    { numRuns: 2000, salt: 6 },
  );
});

// ---- generated requests: valid ones are parsed exactly, one defect is refused with its code

const integerText = fc.oneof(fc.nat({ max: 100 }), fc.maxSafeNat()).map(String);

interface Generated {
  raw: RawParams;
  expected: ProtocolRequest;
}
const ROOMY: ParamLimits = { maxChannelBytes: 256, maxMessageBytes: 1024, maxCallbackLength: 64, pollTimeout: 30, jsonp: 'on', jsonpCallback: '' };

const validRequest: fc.Arbitrary<Generated> = fc
  .record({
    method: fc.constantFrom<'put' | 'get' | 'sync'>('put', 'get', 'sync'),
    channel: unicode(24).filter((c) => c !== '' && bytes(c) <= ROOMY.maxChannelBytes),
    message: unicode(64),
    callback: fc.option(callbackArb, { nil: undefined }),
    time: fc.option(integerText, { nil: undefined }),
    timeout: fc.option(integerText, { nil: undefined }),
  })
  .map(({ method, channel, message, callback, time, timeout }) => {
    const common = { channel, callback };
    if (method === 'put') return { raw: { method, channel, message, callback }, expected: { method, message, bytes: bytes(message), ...common } };
    if (method === 'sync') return { raw: { method, channel, callback }, expected: { method, ...common } };
    const since = time === undefined ? -1 : Number(time);
    const wait = Math.min(timeout === undefined ? ROOMY.pollTimeout : Number(timeout), ROOMY.pollTimeout);
    return { raw: { method, channel, callback, time, timeout }, expected: { method, since, timeout: wait, ...common } };
  });

t.test('property: generated valid requests, percent-encoded, parse to exactly what was meant', async (t) => {
  checkProperty(
    t,
    'parseProtocolRequest(readParams(encode(valid request)))',
    fc.property(validRequest, encodingArb, fc.nat(), ({ raw, expected }, how, mix) => {
      const query = KNOWN.filter((k) => raw[k] !== undefined)
        .map((k) => `${k}=${encode(raw[k]!, how, mix, false)}`)
        .join('&');
      const got = parseProtocolRequest(readParams(query), ROOMY);
      return isDeepStrictEqual(got, expected);
    }),
    { numRuns: 3000, salt: 7 },
  );
});

/** One defect, the code it must be refused with, and the limits it is judged under. */
type Defect = [RawParams, ErrorCode, Partial<ParamLimits>];
const d = (change: RawParams, code: ErrorCode, limits: Partial<ParamLimits> = {}): Defect => [change, code, limits];

/** Single defects (parse checks method, channel, callback, message, time, timeout in that order, so each is the first found). */
const defect: fc.Arbitrary<Defect> = fc.oneof(
  fc.constant(d({ method: undefined }, 'COMET_ERR_BAD_METHOD')),
  soup.filter((m) => !['put', 'get', 'sync'].includes(m)).map((method) => d({ method }, 'COMET_ERR_BAD_METHOD')),
  fc.constantFrom(undefined, '').map((channel) => d({ channel }, 'COMET_ERR_BAD_CHANNEL')),
  unicode(80)
    .filter((c) => bytes(c) > 16)
    .map((channel) => d({ channel }, 'COMET_ERR_BAD_CHANNEL', { maxChannelBytes: 16 })),
  soup.filter((c) => !isIdentifierPath(c)).map((callback) => d({ callback }, 'COMET_ERR_BAD_CALLBACK')),
  fc.tuple(callbackArb, fc.constantFrom(...RESERVED), fc.nat()).map(([cb, reserved, at]) => {
    const parts = cb.split('.');
    parts.splice(at % (parts.length + 1), 0, reserved);
    return d({ callback: parts.join('.') }, 'COMET_ERR_BAD_CALLBACK');
  }),
  callbackArb.filter((c) => c.length > 8).map((callback) => d({ callback }, 'COMET_ERR_BAD_CALLBACK', { maxCallbackLength: 8 })),
  callbackArb.map((callback) => d({ callback }, 'COMET_ERR_BAD_CALLBACK', { jsonp: 'off' })),
  callbackArb.filter((c) => !/^cb_[0-9]+$/.test(c)).map((callback) => d({ callback }, 'COMET_ERR_BAD_CALLBACK', { jsonpCallback: 'cb_[0-9]+' })),
  fc.constant(d({ method: 'put', message: undefined }, 'COMET_ERR_MISSING_MESSAGE')),
  unicode(80)
    .filter((m) => bytes(m) > 32)
    .map((message) => d({ method: 'put', message }, 'COMET_ERR_MESSAGE_TOO_LARGE', { maxMessageBytes: 32 })),
  fc
    .oneof(soup, fc.constantFrom('9007199254740992', '99999999999999999', '-1', '1e3', ' 1', '\u0661'))
    .filter((s) => !/^[0-9]{1,16}$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER)
    .chain((bad) => fc.constantFrom(d({ method: 'get', time: bad }, 'COMET_ERR_BAD_TIME'), d({ method: 'get', timeout: bad }, 'COMET_ERR_BAD_TIMEOUT'))),
);

t.test('property: a valid request with one defect is refused with that defect code, and 4xx', async (t) => {
  checkProperty(
    t,
    'parseProtocolRequest(valid request + one defect)',
    fc.property(validRequest, defect, ({ raw }, [change, code, limits]) => {
      // A get keeps valid time/timeout unless the defect is in them; a put keeps its message unless the defect is in it.
      const broken: RawParams = { ...raw, ...change };
      if (change.method === 'get') broken.message = undefined;
      try {
        parseProtocolRequest(broken, { ...ROOMY, ...limits });
        return false;
      } catch (err) {
        return refusedWith4xx(err, code);
      }
    }),
    { numRuns: 3000, salt: 8 },
  );
});

t.test('property: time and timeout are 1 to 16 ASCII digits at most 2^53 - 1, read as their number', async (t) => {
  const digits = fc.string({ unit: fc.constantFrom('0', '1', '5', '9'), maxLength: 18 });
  const nearMax = fc.bigInt({ min: 2n ** 53n - 1000n, max: 2n ** 53n + 1000n }).map(String);
  const padded = fc.tuple(fc.nat(), fc.integer({ min: 14, max: 18 })).map(([n, width]) => String(n).padStart(width, '0'));
  const text = fc.oneof(digits, nearMax, padded, soup, fc.string({ unit: fc.constantFrom('0', '9', '-', '+', '.', 'e', ' ', '\u0661'), maxLength: 17 }));
  checkProperty(
    t,
    'parseProtocolRequest(get with time = text)',
    fc.property(text, (time) => {
      const expected = /^[0-9]{1,16}$/.test(time) && Number(time) <= Number.MAX_SAFE_INTEGER ? Number(time) : undefined;
      try {
        const parsed = parseProtocolRequest({ method: 'get', channel: 'c', time, timeout: time }, { ...ROOMY, pollTimeout: Number.MAX_SAFE_INTEGER });
        return parsed.method === 'get' && parsed.since === expected && parsed.timeout === expected;
      } catch (err) {
        return expected === undefined && refusedWith4xx(err, 'COMET_ERR_BAD_TIME');
      }
    }),
    { numRuns: 5000, salt: 14 },
  );
});

// ---- JSONP callbacks ----------------------------------------------------------------

const callbackSoup = fc.oneof(
  soup,
  fc.string({ unit: fc.constantFrom(...'aZ_$09.'), maxLength: 12 }),
  fc.array(fc.oneof(identifier, fc.constantFrom(...RESERVED), fc.constantFrom('', '0a', 'a-b', 'é', '\u200b', 'ａ')), { maxLength: 4 }).map((a) => a.join('.')),
  fc.tuple(callbackArb, fc.constantFrom('\n', '\u2028', ' ', '(', ')', ';', '//', '[0]', '\0')).map(([cb, tail]) => cb + tail),
);

t.test('property: isValidCallback and reservedSegment never throw and agree with the grammar and the reserved list', async (t) => {
  checkProperty(
    t,
    'isValidCallback(s) === s is an ASCII identifier path',
    fc.property(callbackSoup, (s) => isValidCallback(s) === isIdentifierPath(s)),
    { numRuns: 5000, salt: 9 },
  );
  checkProperty(
    t,
    'reservedSegment(s) is the first reserved segment of s',
    fc.property(callbackSoup, (s) => reservedSegment(s) === firstReserved(s)),
    { numRuns: 5000, salt: 10 },
  );
  checkProperty(
    t,
    'every callback parseProtocolRequest accepts is an identifier path without a reserved segment, within the length limit',
    fc.property(callbackSoup, limitsArb, (callback, limits) => {
      try {
        const req = parseProtocolRequest({ method: 'sync', channel: 'c', callback }, limits);
        const allow = limits.jsonpCallback === '' ? undefined : new RegExp(`^(?:${limits.jsonpCallback})$`);
        return (
          req.callback === callback &&
          isIdentifierPath(callback) &&
          firstReserved(callback) === undefined &&
          callback.length <= limits.maxCallbackLength &&
          (allow === undefined || allow.test(callback))
        );
      } catch (err) {
        return refusedWith4xx(err, 'COMET_ERR_BAD_CALLBACK');
      }
    }),
    { numRuns: 5000, salt: 11 },
  );
});

/** Pattern sources made of regular-expression syntax, valid or not. */
const patternSource = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'ab_.|*+?()[]{}^$\\0-9:=!<>,'), maxLength: 12 }),
  fc.constantFrom('', 'cb_[0-9]+', 'a|b', '[a-z.]+', '(a)\\1', ']', '{', 'x{2,3}', '(?:cb)|(?:jq)\\w+', '(?<n>a)\\k<n>'),
);

t.test('property: callbackPattern compiles every source the configuration accepts, anchored, and its cache never serves a stale pattern', async (t) => {
  checkProperty(
    t,
    'callbackPattern(source) for any sequence of sources',
    fc.property(fc.array(fc.tuple(patternSource, callbackSoup), { minLength: 1, maxLength: 6 }), (calls) => {
      for (const [source, callback] of calls) {
        try {
          new RegExp(source); // what the configuration checks (isCallbackPattern)
        } catch {
          continue; // refused at startup, never reaches callbackPattern
        }
        const compiled = callbackPattern(source);
        if (source === '') {
          if (compiled !== undefined) return false;
          continue;
        }
        const fresh = compileCallbackPattern(source);
        if (compiled === undefined || compiled.source !== fresh.source || compiled.test(callback) !== fresh.test(callback)) return false;
        // Anchored: a match is always of the whole callback.
        const m = compiled.exec(callback);
        if (m !== null && m[0] !== callback) return false;
      }
      return true;
    }),
    { numRuns: 3000, salt: 12 },
  );
});

// ---- scriptSafeJson ---------------------------------------------------------------

t.test('property: scriptSafeJson is JSON.stringify with U+2028 and U+2029 escaped, for any text, lone surrogates too', async (t) => {
  const oracle = (s: string) => JSON.stringify(s).replaceAll('\u2028', '\\u2028').replaceAll('\u2029', '\\u2029');
  // Every UTF-16 unit, and runs of what needs no escape on either side of the ones that do.
  const text = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme' }),
    fc.string({
      unit: fc.constantFrom(
        'a',
        'é',
        '€',
        '"',
        '\\',
        '\n',
        '\u001f',
        '\u007f',
        '\u2027',
        '\u2028',
        '\u2029',
        '\u202a',
        '\ud7ff',
        '\ud800',
        '\udfff',
        '\ue000',
        '😀',
      ),
    }),
  );
  checkProperty(
    t,
    'scriptSafeJson(any string)',
    fc.property(text, (s) => scriptSafeJson(s) === oracle(s)),
    { numRuns: 5000, salt: 13 },
  );
});
