/**
 * Concurrent publishers and chaining subscribers: every subscriber sees every
 * message of its channel exactly once, in time order (hence in each
 * publisher's order), never with missed.
 */
import t from 'tap';
import { startServer, type CometServer } from './helpers/server.js';
import { chain, channels, strictlyIncreasing, type ChainResult } from './helpers/protocol.js';

const CHANNELS = 6;
const PUBLISHERS = 4;
const PER_PUBLISHER = 200;

/** Publisher p sends message j to channel (p + j) % CHANNELS; the last publisher uses POST bodies. */
async function publish(srv: CometServer, chs: string[], p: number, putTimes: Map<string, number>): Promise<void> {
  for (let j = 0; j < PER_PUBLISHER; j++) {
    const channel = chs[(p + j) % CHANNELS]!;
    const message = `p${p}:${j}`;
    if (p === PUBLISHERS - 1) {
      const res = await srv.post({ method: 'put', channel, message });
      if (res.status !== 200) throw new Error(`POST put failed: ${res.status} ${res.body}`);
      putTimes.set(message, res.json.time);
    } else {
      putTimes.set(message, await srv.put(channel, message));
    }
  }
}

/** Checks that the answers' times are the put times of the last message of each answer. */
function answerTimesMatch(r: ChainResult, putTimes: Map<string, number>): boolean {
  let seen = 0;
  for (const a of r.answers) {
    if (a.count === 0) continue;
    seen += a.count;
    if (putTimes.get(r.messages[seen - 1]!) !== a.time) return false;
  }
  return true;
}

for (const threads of [1, 3]) {
  t.test(`threads=${threads}: ${PUBLISHERS} publishers x ${PER_PUBLISHER} messages over ${CHANNELS} channels`, async (t) => {
    // A buffer large enough for the whole run: what is tested is chaining, not eviction.
    const srv = await startServer({ t, threads, args: ['--buffer-size', '1000'] });
    const chs = channels('chain', CHANNELS);
    const expected: string[][] = chs.map(() => []);
    for (let p = 0; p < PUBLISHERS; p++) for (let j = 0; j < PER_PUBLISHER; j++) expected[(p + j) % CHANNELS]!.push(`p${p}:${j}`);
    const syncs = await Promise.all(chs.map((c) => srv.sync(c)));

    // Two subscribers per channel: one asks again at once, one dawdles so that messages pile up between gets.
    const subs = chs.flatMap((ch, i) => [
      { ch, i, kind: 'eager', run: chain(srv, ch, syncs[i]!, expected[i]!.length, { deadlineMs: 40000 }) },
      {
        ch,
        i,
        kind: 'slow',
        run: chain(srv, ch, syncs[i]!, expected[i]!.length, { deadlineMs: 40000, pauseMs: () => Math.floor(Math.random() * 15) }),
      },
    ]);
    await srv.waitWaiting(subs.length, { timeoutMs: 5000 });

    const putTimes = new Map<string, number>();
    const started = performance.now();
    await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => publish(srv, chs, p, putTimes)));
    t.comment(`${PUBLISHERS * PER_PUBLISHER} puts in ${Math.round(performance.now() - started)} ms`);
    t.equal(putTimes.size, PUBLISHERS * PER_PUBLISHER, 'every put answered');

    for (const sub of subs) {
      const r = await sub.run;
      const label = `channel ${sub.i} (${sub.kind})`;
      t.notOk(r.timedOut, `${label}: received everything before the deadline`, { got: r.messages.length, want: expected[sub.i]!.length });
      t.notOk(r.missed, `${label}: never missed`);
      t.equal(new Set(r.messages).size, r.messages.length, `${label}: no duplicates`);
      t.strictSame([...r.messages].sort(), [...expected[sub.i]!].sort(), `${label}: every message of the channel, and only those`);
      const perPublisherInOrder = Array.from({ length: PUBLISHERS }, (_, p) =>
        strictlyIncreasing(r.messages.filter((m) => m.startsWith(`p${p}:`)).map((m) => Number(m.split(':')[1]))),
      ).every(Boolean);
      t.ok(perPublisherInOrder, `${label}: each publisher's messages in its order`);
      t.ok(strictlyIncreasing(r.messages.map((m) => putTimes.get(m) ?? -1)), `${label}: messages in put-time order`);
      t.ok(answerTimesMatch(r, putTimes), `${label}: each answer's time is its last message's time`);
      t.ok(strictlyIncreasing(r.answers.filter((a) => a.count > 0).map((a) => a.time)), `${label}: answer times increase`);
    }
    t.ok(await srv.waitWaiting(0, { exact: true }), 'no get left waiting');
  });
}
