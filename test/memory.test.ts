// Bounded memory, seen from a client: channels evicted after --channel-ttl and
// messages dropped under --max-memory are reported as "missed", never skipped
// silently, and a client that had everything misses nothing.
import t from 'tap';
import { uniq } from './helpers/protocol.js';
import { startServer } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

for (const threads of [1, 3]) {
  t.test(`threads=${threads}`, async (t) => {
    t.test('an idle channel is evicted after --channel-ttl; old cursors see missed', async (t) => {
      const srv = await startServer({ t, threads, args: ['--channel-ttl', '1'] });
      const ch = uniq('ttl');
      const before = await srv.sync(ch);
      const tm = await srv.put(ch, 'soon gone');
      const held = await srv.get(ch, { time: before, timeout: 0 });
      t.strictSame(held.messages, ['soon gone'], 'held while the channel is fresh');
      // The sweep runs every second; the channel goes once idle for more than one.
      const gone = await waitFor(
        async () => {
          const a = await srv.get(ch, { time: before, timeout: 0 });
          return a.missed === true ? a : undefined;
        },
        { timeoutMs: 6000, intervalMs: 200 },
      );
      t.strictSame(gone.messages, [], 'the evicted message is gone');
      t.ok(gone.time >= tm, 'the answer time is not below the last time the channel had', { time: gone.time, tm });
      const upToDate = await srv.get(ch, { time: tm, timeout: 0 });
      t.not(upToDate.missed, true, 'a client that had the last message misses nothing');
      const next = await srv.put(ch, 'after');
      t.ok(next > tm, 'times keep increasing after the eviction');
      const a = await srv.get(ch, { time: tm, timeout: 0 });
      t.strictSame(a.messages, ['after']);
      t.not(a.missed, true);
    });

    t.test('a channel with a waiting get is not evicted', async (t) => {
      const srv = await startServer({ t, threads, args: ['--channel-ttl', '1'] });
      const ch = uniq('ttl-watched');
      const tm = await srv.put(ch, 'kept');
      const waiting = srv.get(ch, { time: tm, timeout: 4 });
      await srv.waitWaiting(1);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const next = await srv.put(ch, 'while waiting');
      const answer = await waiting;
      t.strictSame(answer.messages, ['while waiting']);
      t.equal(answer.time, next);
      t.not(answer.missed, true, 'nothing was lost while a get waited');
    });

    t.test('over --max-memory the least recently written channel loses its oldest messages, reported as missed', async (t) => {
      const srv = await startServer({ t, threads, args: ['--max-memory', String(1 << 20), '--buffer-size', '100000'] });
      const old = uniq('old');
      const oldFrom = await srv.sync(old);
      for (let i = 0; i < 3; i++) await srv.put(old, `old-${i}`);
      // Write far more than the whole budget to other channels, some of them on old's thread.
      const big = 'x'.repeat(30_000);
      for (let i = 0; i < 120; i++) await srv.put(uniq('fill'), big);
      const a = await srv.get(old, { time: oldFrom, timeout: 0 });
      t.equal(a.missed, true, 'the dropped messages are reported missed', { answer: { ...a, res: undefined } });
      await new Promise((resolve) => setTimeout(resolve, 1200)); // the gauge is refreshed every second
      const stored = (await srv.metrics()).value('comet_stored_bytes');
      t.ok(stored > 0, 'the gauge reflects the writes', { stored });
      t.ok(stored <= (1 << 20) + 64 * 1024 * threads, 'stored bytes stay within the budget (plus one message per thread)', { stored });
    });
  });
}
