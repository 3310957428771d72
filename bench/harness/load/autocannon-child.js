// One load-generator process of the throughput scenarios (./autocannon-load.js
// forks one per load core, since autocannon uses one core at most). Each of
// its connections replays the given requests in a loop, keep-alive, one at a
// time. Latencies go into a mergeable histogram, so that the parent's
// percentiles cover all processes exactly. One autocannon instance per target
// URL (a multi-node target's nodes), all in step.
//
// The messages are typed in ./messages.d.ts (AutocannonCommand, AutocannonReport).
// parent -> child  {cmd:'run', targets: [{url, connections, offset}], requests, warmupS, durationS}
//                    offset: where in requests the instance starts its rotation
//                  {cmd:'go'}      start the measured part (after 'warm')
// child  -> parent {type:'warm'}   warm-up done, waiting for 'go'
//                  {type:'done', requests, errors, non2xx, timeouts, durationS, histogram}
//                  {type:'fatal', message}
// Exits when the parent goes away, and after 10 minutes in any case.

import autocannon from 'autocannon';
import { Histogram } from '../histogram.js';

/**
 * @typedef {import('./messages.js').AutocannonCommand} AutocannonCommand
 * @typedef {Extract<AutocannonCommand, { cmd: 'run' }>} RunCommand
 * @typedef {import('./messages.js').AutocannonReport} AutocannonReport
 * @typedef {import('./messages.js').AutocannonTarget} AutocannonTarget
 * @typedef {import('../types.js').Request} Request
 * @typedef {(client: unknown, status: number, bytes: number, ms: number) => void} OnResponse
 */

setTimeout(() => process.exit(3), 10 * 60_000).unref();
process.on('disconnect', () => process.exit(0));
/** @param {AutocannonReport} m */
const send = (m) => process.connected && process.send?.(m);

/**
 * @param {AutocannonTarget} target
 * @param {Request[]} requests
 * @param {number} durationS
 * @param {OnResponse} [onResponse]
 * @returns {Promise<autocannon.Result>}
 */
function runOne(target, requests, durationS, onResponse) {
  const rotated = [...requests.slice(target.offset), ...requests.slice(0, target.offset)];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        connections: target.connections,
        duration: durationS,
        requests: rotated.map((r) => ({ method: r.method ?? 'GET', path: r.path, headers: r.headers, body: r.body })),
        timeout: 10,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (onResponse) instance.on('response', onResponse);
  });
}

/**
 * Every target's instance at once; resolves their results summed (the span: the longest).
 * @param {RunCommand} m
 * @param {number} durationS
 * @param {OnResponse} [onResponse]
 */
async function run(m, durationS, onResponse) {
  const results = await Promise.all(m.targets.map((t) => runOne(t, m.requests, durationS, onResponse)));
  /** @param {(r: autocannon.Result) => number} f */
  const sum = (f) => results.reduce((a, r) => a + f(r), 0);
  return {
    requests: sum((r) => r.requests.total),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    timeouts: sum((r) => r.timeouts),
    duration: Math.max(...results.map((r) => r.duration)),
  };
}

/** @type {() => void} */
let go = () => {};
/** @type {Promise<void>} */
const started = new Promise((r) => (go = r));

process.on('message', async (/** @type {AutocannonCommand} */ m) => {
  try {
    if (m.cmd === 'go') return go();
    if (m.cmd !== 'run') return;
    if (m.warmupS > 0) await run(m, m.warmupS);
    send({ type: 'warm' });
    await started;
    const histogram = new Histogram();
    const result = await run(m, m.durationS, (_client, _status, _bytes, ms) => histogram.record(ms * 1000));
    send({
      type: 'done',
      requests: result.requests,
      errors: result.errors,
      non2xx: result.non2xx,
      timeouts: result.timeouts,
      // its own span of sending (s), without connecting or reporting
      durationS: result.duration,
      histogram: histogram.toJSON(),
    });
  } catch (err) {
    send({ type: 'fatal', message: String(/** @type {Error} */ (err)?.stack ?? err) });
  }
});
