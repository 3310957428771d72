/**
 * The streaming transports' formats (src/protocol/streams.ts) without a
 * server: a read's joined messages split back exactly, server-sent events as
 * an EventSource parses them, and WebSocket request frames checked as the
 * same request over HTTP would be. Properties run on generated strings (the
 * seed is printed; COMET_FUZZ_SEED replays it).
 */
import fc from 'fast-check';
import t from 'tap';
import { scriptSafeJson } from '../../src/protocol/jsonp.js';
import { FrameRefusal, parseFrame, splitMessages, sseEvents, sseMissed, wsDelivery } from '../../src/protocol/streams.js';
import { announceSeed, checkProperty } from '../helpers/fuzz.js';

announceSeed(t);
const LIMITS = { maxChannelBytes: 16, maxMessageBytes: 32 };
/** Any string, lone surrogates and the line separators included. */
const text = fc.string({ unit: 'binary', maxLength: 40 });

t.test('splitMessages gives back every message of a read, whatever it holds', async (t) => {
  checkProperty(
    t,
    'splitMessages(join(scriptSafeJson(m)))',
    fc.property(fc.array(text, { minLength: 1, maxLength: 8 }), (messages) => {
      const bodies = messages.map((m) => scriptSafeJson(m));
      const split = splitMessages(bodies.join(','), bodies.length);
      return split.length === bodies.length && split.every((b, i) => b === bodies[i] && JSON.parse(b) === messages[i]);
    }),
    { numRuns: 2000, salt: 11 },
  );
  t.same(splitMessages('"a,b","c\\"d","\\\\"', 3), ['"a,b"', '"c\\"d"', '"\\\\"']);
});

/** What an EventSource makes of a stream (the WHATWG parser's rules for id, event and data). */
function parseEventStream(stream: string): Array<{ id: string; event: string; data: string }> {
  const events = [];
  let id = '';
  for (const block of stream.split('\n\n')) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) events.push({ id, event, data: data.join('\n') });
  }
  return events;
}

t.test('server-sent events: one event per message, its time as id, its text exact', async (t) => {
  checkProperty(
    t,
    'parse(sseEvents(times, scriptSafeJson(m)))',
    fc.property(fc.array(text, { minLength: 1, maxLength: 6 }), fc.nat({ max: 2 ** 40 }), (messages, base) => {
      const times = messages.map((_, i) => base + i * 7);
      const events = parseEventStream(
        sseMissed(base - 1) +
          sseEvents(
            times,
            messages.map((m) => scriptSafeJson(m)),
          ),
      );
      if (events.length !== messages.length + 1) return false;
      if (events[0]!.event !== 'missed' || JSON.parse(events[0]!.data).time !== base - 1) return false;
      return messages.every((m, i) => {
        const e = events[i + 1]!;
        return e.event === 'message' && e.id === String(times[i]) && JSON.parse(e.data) === m;
      });
    }),
    { numRuns: 2000, salt: 12 },
  );
  t.equal(sseEvents([5, 6], ['"a"', '"b"'], 1), 'id: 6\ndata: "b"\n\n', 'from an index');
});

t.test('a WebSocket delivery is the JSON of a get answer plus its channel', async (t) => {
  t.same(JSON.parse(wsDelivery(JSON.stringify('c"h'), 9, '"x","y"', false)), { channel: 'c"h', time: 9, messages: ['x', 'y'] });
  t.same(JSON.parse(wsDelivery('"c"', 3, '', true)), { channel: 'c', time: 3, messages: [], missed: true });
});

t.test('parseFrame: requests as over HTTP, refusals with the id they carry', async (t) => {
  const refusal = (frame: string): [string, string] => {
    try {
      parseFrame(frame, LIMITS);
    } catch (err) {
      if (err instanceof FrameRefusal) return [err.id, err.error.code];
      throw err;
    }
    throw new Error(`accepted: ${frame}`);
  };
  t.same(parseFrame('{"id":1,"method":"subscribe","channel":"c"}', LIMITS), { method: 'subscribe', id: '1', channel: 'c', since: -1, token: undefined });
  t.same(parseFrame('{"id":"a","method":"subscribe","channel":"c","time":0,"token":"t"}', LIMITS), {
    method: 'subscribe',
    id: '"a"',
    channel: 'c',
    since: 0,
    token: 't',
  });
  t.same(parseFrame('{"id":2,"method":"put","channel":"c","message":"€"}', LIMITS), {
    method: 'put',
    id: '2',
    channel: 'c',
    message: '€',
    bytes: 3,
    token: undefined,
  });
  t.same(parseFrame('{"id":3,"method":"sync","channel":"c","extra":true}', LIMITS), { method: 'sync', id: '3', channel: 'c', token: undefined });
  t.same(parseFrame('{"id":4,"method":"unsubscribe","channel":"c"}', LIMITS), { method: 'unsubscribe', id: '4', channel: 'c', token: undefined });
  const cases: Array<[string, string, string]> = [
    ['', 'null', 'COMET_ERR_BAD_FRAME'],
    ['[]', 'null', 'COMET_ERR_BAD_FRAME'],
    ['{"method":"sync","channel":"c"}', 'null', 'COMET_ERR_BAD_FRAME'],
    ['{"id":null,"method":"sync","channel":"c"}', 'null', 'COMET_ERR_BAD_FRAME'],
    [`{"id":"${'x'.repeat(80)}","method":"sync","channel":"c"}`, 'null', 'COMET_ERR_BAD_FRAME'],
    ['{"id":1,"channel":"c"}', '1', 'COMET_ERR_BAD_METHOD'],
    ['{"id":1,"method":"get","channel":"c"}', '1', 'COMET_ERR_BAD_METHOD'],
    ['{"id":1,"method":"sync"}', '1', 'COMET_ERR_BAD_CHANNEL'],
    ['{"id":1,"method":"sync","channel":5}', '1', 'COMET_ERR_BAD_CHANNEL'],
    ['{"id":1,"method":"sync","channel":"ééééééééé"}', '1', 'COMET_ERR_BAD_CHANNEL'],
    ['{"id":1,"method":"sync","channel":"\\ud800"}', '1', 'COMET_ERR_BAD_ENCODING'],
    ['{"id":1,"method":"sync","channel":"c","token":5}', '1', 'COMET_ERR_UNAUTHORIZED'],
    ['{"id":1,"method":"subscribe","channel":"c","time":-1}', '1', 'COMET_ERR_BAD_TIME'],
    ['{"id":1,"method":"subscribe","channel":"c","time":0.5}', '1', 'COMET_ERR_BAD_TIME'],
    ['{"id":1,"method":"subscribe","channel":"c","time":9007199254740992}', '1', 'COMET_ERR_BAD_TIME'],
    ['{"id":1,"method":"put","channel":"c"}', '1', 'COMET_ERR_MISSING_MESSAGE'],
    ['{"id":1,"method":"put","channel":"c","message":null}', '1', 'COMET_ERR_MISSING_MESSAGE'],
    [`{"id":1,"method":"put","channel":"c","message":"${'€'.repeat(11)}"}`, '1', 'COMET_ERR_MESSAGE_TOO_LARGE'],
    ['{"id":1,"method":"put","channel":"c","message":"a\\udc00"}', '1', 'COMET_ERR_BAD_ENCODING'],
  ];
  for (const [frame, id, code] of cases) t.same(refusal(frame), [id, code], frame.slice(0, 60));
  checkProperty(
    t,
    'parseFrame(any text) accepts a request or refuses it with a 4xx, and never throws anything else',
    fc.property(fc.oneof(text, fc.json()), (frame) => {
      try {
        parseFrame(frame, LIMITS);
        return true;
      } catch (err) {
        return err instanceof FrameRefusal && err.error.statusCode >= 400 && err.error.statusCode < 500;
      }
    }),
    { numRuns: 3000, salt: 13 },
  );
});
