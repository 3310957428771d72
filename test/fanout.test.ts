/**
 * Fan-out to many waiting gets, and aborted gets that must not leave waiting
 * slots (or connections) behind.
 */
import t from 'tap';
import { makeAgent, rawGet, rawSend, startServer, stillPending, waitFor, within, type HttpResponse } from './helpers/server.js';
import { channels, checkMessages, uniq } from './helpers/protocol.js';

const FANOUT = 1000;
const ABORT_ROUNDS = 6;
const ABORT_PER_ROUND = 500;

for (const threads of [1, 3]) {
  t.test(`threads=${threads}`, async (t) => {
    const srv = await startServer({ t, threads });

    t.test(`${FANOUT} waiting gets on one channel all receive one put`, async (t) => {
      const ch = uniq('fan');
      const s = await srv.sync(ch);
      const agent = makeAgent(false); // one connection per get
      t.teardown(() => agent.destroy());
      const gets: Array<Promise<HttpResponse>> = [];
      for (let i = 0; i < FANOUT; i++) {
        // Half wait from the sync time, half without a time.
        const params = i % 2 ? { method: 'get', channel: ch, time: s, timeout: 25 } : { method: 'get', channel: ch, timeout: 25 };
        gets.push(srv.call(params, { agent, timeoutMs: 30000 }));
      }
      const reached = await srv.waitWaiting(FANOUT, { exact: true, timeoutMs: 15000 });
      t.ok(reached, `comet_waiting_gets reaches ${FANOUT}`, { waiting: await srv.waiting().catch(String) });
      const newsBefore = (await srv.metrics()).value('comet_news_sent_total');
      const tp = await srv.put(ch, 'fanout!');
      const started = performance.now();
      const results = await within(Promise.allSettled(gets), 15000, 'fan-out answers');
      t.comment(`fan-out to ${FANOUT} gets answered in ${Math.round(performance.now() - started)} ms`);
      const expected = JSON.stringify({ time: tp, messages: ['fanout!'] });
      const bad = results
        .map((r, i) => ({ i, r }))
        .filter(({ r }) => r.status !== 'fulfilled' || r.value.status !== 200 || JSON.stringify(r.value.json) !== expected);
      t.equal(bad.length, 0, `all ${FANOUT} gets answered with {"time":T,"messages":["fanout!"]}`, {
        expected,
        firstBad: bad
          .slice(0, 3)
          .map(({ i, r }) => (r.status === 'fulfilled' ? { i, status: r.value.status, body: r.value.body.slice(0, 200) } : { i, error: String(r.reason) })),
      });
      t.ok(await srv.waitWaiting(0, { exact: true, timeoutMs: 5000 }), 'comet_waiting_gets back to 0', {
        waiting: await srv.waiting().catch(String),
      });
      const notices = (await srv.metrics()).value('comet_news_sent_total') - newsBefore;
      t.ok(notices >= 1 && notices <= threads, `the publish cost ${notices} cross-thread notices: at most one per thread, not one per get`);
    });

    t.test(`${ABORT_ROUNDS * ABORT_PER_ROUND} aborted gets leave nothing waiting`, async (t) => {
      const baseline = (await srv.metrics()).value('comet_connections');
      const chs = channels('abort', 5);
      for (let round = 0; round < ABORT_ROUNDS; round++) {
        const socks = await Promise.all(
          Array.from({ length: ABORT_PER_ROUND }, (_, i) =>
            rawSend(srv, rawGet(`/?method=get&channel=${encodeURIComponent(chs[i % chs.length]!)}&timeout=25`)),
          ),
        );
        // Even rounds abort once the server holds them all; odd rounds abort at once.
        if (round % 2 === 0) {
          t.ok(await srv.waitWaiting(ABORT_PER_ROUND, { timeoutMs: 10000 }), `round ${round}: ${ABORT_PER_ROUND} gets waiting`);
        }
        for (const sock of socks) sock.destroy();
      }
      t.ok(await srv.waitWaiting(0, { exact: true, timeoutMs: 10000 }), 'comet_waiting_gets returns to 0', {
        waiting: await srv.waiting().catch(String),
      });
      let conns = NaN;
      const settled = await waitFor(
        async () => {
          conns = (await srv.metrics()).value('comet_connections');
          return conns <= baseline + 2;
        },
        { timeoutMs: 10000 },
      ).catch(() => false);
      t.ok(settled, 'comet_connections back to its baseline', { baseline, conns });

      // The server still serves, on the very channels the aborted gets waited on.
      for (const ch of chs) {
        const p = srv.get(ch, { timeout: 10 });
        t.ok(await srv.waitWaiting(1, { exact: true }), `${ch}: exactly one get waiting`);
        t.ok(await srv.waitParked(1, { exact: true }), `${ch}: and parked`);
        t.ok(await stillPending(p, 50), 'it waits');
        const tp = await srv.put(ch, 'after aborts');
        const a = await within(p, 3000, 'get after aborts');
        checkMessages(t, a, ['after aborts'], `${ch}: answered`);
        t.equal(a.time, tp);
      }
    });
  });
}
