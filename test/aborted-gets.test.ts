/**
 * 100,000 aborted gets (issue 13 item 6): connections that each open a
 * waiting get and close before any answer, as browsers leaving a page do.
 * The contract says a client that disconnects while waiting costs nothing
 * afterwards: the waiting gauge must come back to 0 after every wave, and the
 * server's resident memory must be flat between the first 10,000 and the
 * 100,000th.
 *
 * Waves of WAVE connections, spread over SOURCES loopback source addresses
 * (127.0.0.2 and up, so that the client's ephemeral ports and TIME_WAIT
 * entries do not run out on one address, and so that other test files on
 * 127.0.0.1 are not crowded): each wave opens its connections, sends a get on
 * one of a few channels (a get on a new channel creates one, issue 13 item 5,
 * which is not what is measured here), waits until the server counts them all
 * as waiting, then closes them, three in four with a reset and one in four
 * with a FIN, and waits until the gauge is 0 again.
 */
import fs from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { uniq } from './helpers/protocol.js';
import { sleep, startServer } from './helpers/server.js';

const TOTAL = 100_000;
const WAVE = 250;
const SOURCES = 8;
const CHANNELS = 16;
/** The first sample, taken once the server has warmed up (its heaps and uWS's socket pools at working size). */
const WARM = 10_000;
/**
 * RSS may grow this much from WARM to the end, the end being the lowest of the
 * last three samples (80k, 90k, 100k): a leak only grows, so the lowest late
 * sample grows with it, while the moment of V8's collections and its heap
 * resizing move single samples by tens of MB. Measured over seven runs: 173 to
 * 184 MB at 10k, growth to 190-214 MB by 40k-80k (V8's old space sizing itself
 * to the load), then either flat or collected back to 142-160 MB; the lowest
 * late sample was 31 MB below to 25 MB above the 10k one. A leak of 460 bytes
 * per aborted get (a waiter with its closures and map entry) adds 32 MB over
 * the 70,000 gets from 10k to 80k and fails; smaller leaks are within the
 * noise of one process's RSS and are left to the soak tool's longer runs.
 */
const RSS_TOLERANCE_MB = 32;
/**
 * A bound, not the expected time: 100,000 take about 13 s without coverage and
 * 50 s under tap's coverage on the 2-core machine. Waves larger than the
 * listen backlog (1,000 and up) overflow it and wait for SYN retransmits: 34 s.
 */
const TIME_BUDGET_MS = 120_000;

const srv = await startServer({ threads: 2 });
const pid = srv.proc.pid!;

function rssMb(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Opens a connection from `localAddress` and writes one get; resolves with the socket once written. */
function openGet(localAddress: string, path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: srv.host, port: srv.port, localAddress });
    sock.on('error', reject);
    sock.on('connect', () => sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, () => resolve(sock)));
  });
}

/** Polls comet_waiting_gets until it is `n` (every 5 ms, at most `timeoutMs`); returns whether it got there. */
async function waitingIs(n: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await srv.waiting()) === n) return true;
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
}

t.test(`${TOTAL.toLocaleString('en')} gets aborted while waiting: the waiting gauge returns to 0 and RSS stays flat`, async (t) => {
  const channels = Array.from({ length: CHANNELS }, (_, i) => uniq(`abort${i}`));
  const started = Date.now();
  const samples: Array<{ aborted: number; rssMb: number; ms: number }> = [];
  let aborted = 0;
  let stragglers = 0;
  while (aborted < TOTAL) {
    if (Date.now() - started > TIME_BUDGET_MS) break;
    const sockets = await Promise.all(
      Array.from({ length: WAVE }, (_, i) => {
        const n = aborted + i;
        return openGet(`127.0.0.${2 + (n % SOURCES)}`, `/?method=get&channel=${encodeURIComponent(channels[n % CHANNELS]!)}`);
      }),
    );
    if (!(await waitingIs(WAVE))) {
      stragglers++;
      t.fail(`wave at ${aborted}: the server did not count ${WAVE} waiting gets`, { waiting: await srv.waiting() });
    }
    sockets.forEach((s, i) => (i % 4 === 0 ? s.destroy() : s.resetAndDestroy()));
    aborted += WAVE;
    if (!(await waitingIs(0))) {
      t.fail(`after ${aborted} aborted gets, comet_waiting_gets is ${await srv.waiting()}, not 0`);
      return;
    }
    if (aborted % WARM === 0) samples.push({ aborted, rssMb: Math.round(rssMb() * 10) / 10, ms: Date.now() - started });
  }
  const ms = Date.now() - started;
  t.comment(
    `${aborted} aborted gets in ${ms} ms (${Math.round((aborted / ms) * 1000)}/s); RSS by count: ${samples.map((s) => `${s.aborted / 1000}k ${s.rssMb} MB`).join(', ')}`,
  );
  t.equal(aborted, TOTAL, `all ${TOTAL} gets were opened and aborted (bound: ${TIME_BUDGET_MS / 1000} s)`);
  t.equal(stragglers, 0, 'every wave was counted waiting before it was aborted');
  t.equal(await srv.waiting(), 0, 'comet_waiting_gets is 0 at the end');
  const first = samples.find((s) => s.aborted === WARM);
  const late = samples.filter((s) => s.aborted > TOTAL - 3 * WARM);
  if (first && late.length === 3) {
    const end = Math.min(...late.map((s) => s.rssMb));
    t.ok(
      end - first.rssMb <= RSS_TOLERANCE_MB,
      `RSS late (lowest of 80k-100k: ${end} MB) is within ${RSS_TOLERANCE_MB} MB of RSS at ${WARM} aborted gets (${first.rssMb} MB)`,
      {
        samples,
      },
    );
  } else {
    t.fail('RSS was not sampled at 10k and at the last three 10k marks', { samples });
  }
  t.equal((await srv.request({ path: '/healthz' })).status, 200, 'the server still serves');
  const ch = channels[0]!;
  const since = await srv.sync(ch);
  await srv.put(ch, 'after the aborts');
  t.strictSame((await srv.get(ch, { time: since, timeout: 0 })).messages, ['after the aborts'], 'and its channels still work');
});
