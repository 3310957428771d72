// The harness's options: one table drives parsing, defaults and --help, for
// both `comet-bench` (bench/cli.js) and `npm run bench:gate` (bench/gate.js).

import { parseArgs } from '../lib/common.js';
import { coreCount, defaultPinning } from './cpu.js';
import { CASES } from './scenarios/throughput.js';
import { SCENARIOS } from './runner.js';
import { TRANSPORTS } from './scenarios/streams.js';

/**
 * The parsed command line: one field per row of OPTIONS.
 * @typedef {object} Options
 * @property {string[]} scenario
 * @property {string[]} target
 * @property {string} url
 * @property {string} adapter
 * @property {string | number} pid
 * @property {string} label
 * @property {number} runs
 * @property {number} duration
 * @property {number} warmup
 * @property {number} connections
 * @property {string} generator
 * @property {string[]} case
 * @property {number} channels
 * @property {number} messageBytes
 * @property {number[]} waiters
 * @property {number} rounds
 * @property {number} roundPause
 * @property {number[]} idle
 * @property {number[]} threads
 * @property {number} scalingWaiters
 * @property {number} publishers
 * @property {(string | number)[]} clusterTargets
 * @property {number[]} clusterWaiters
 * @property {number[]} streamWaiters
 * @property {number[]} streamIdle
 * @property {string[]} transport
 * @property {string} authToken
 * @property {boolean} pin
 * @property {string} json
 * @property {string} merge
 * @property {string} report
 * @property {string} charts
 * @property {string} fromJson
 * @property {number} runTimeout
 * @property {boolean} quick
 */

/** @typedef {ReturnType<typeof settingsFrom>} Settings what every scenario reads */

const cores = coreCount();
/** @param {number} n */
const powersOfTwoUpTo = (n) => {
  const out = [1];
  while (out[out.length - 1] * 2 <= n) out.push(out[out.length - 1] * 2);
  return out;
};

/**
 * [name, default, quick default (undefined: same), help]
 * @type {[name: keyof Options, def: unknown, quickDef: unknown, help: string][]}
 */
export const OPTIONS = [
  [
    'scenario',
    SCENARIOS,
    undefined,
    'scenarios to run: throughput, fanout, channels, idle, scaling, cluster, auth, limits, streams (or one of its parts: stream-fanout, stream-idle)',
  ],
  [
    'target',
    ['comet-1', 'comet-2', 'ceiling', 'nchan-1', 'nchan-2'],
    undefined,
    'targets: comet-N (this server, N threads), comet-N-auth (the same with --auth all, sent a token with every request), comet-N-limits (the same with the per-client limits on, never refusing), ceiling (bare uWebSockets.js), nchan-N (nginx + Nchan, N workers), redis-N (this server, N threads, channels in a Redis of its own), cluster-N (N such nodes of 1 thread on one Redis; cluster-NxT: T threads each), external (--url)',
  ],
  ['url', '', undefined, 'measure the server at this URL (the external target); implies --target external unless --target is given'],
  ['adapter', 'simple-comet', undefined, 'how to speak to --url: simple-comet, nchan, or a path to an adapter module (bench/README.md)'],
  ['pid', '', undefined, 'process ids of the --url server (comma list), so that its CPU and memory can be read'],
  ['label', '', undefined, 'name of the --url server in the report'],
  ['runs', 3, 1, 'runs of every (scenario, case, target); figures are the median with min and max'],
  ['duration', 5, 2, 'seconds of load per throughput run (after --warmup)'],
  ['warmup', 1, 0.5, 'seconds of unmeasured load before each throughput run'],
  ['connections', 50, undefined, 'throughput: keep-alive connections, over all load processes'],
  [
    'generator',
    'autocannon',
    undefined,
    "throughput load generator: autocannon (one process per load core) or wrk (Debian's, one thread per load core; saturates a fast server sooner)",
  ],
  ['case', CASES, undefined, `throughput cases: ${CASES.join(', ')}`],
  ['channels', 1000, undefined, 'throughput put-many: channels the puts rotate over'],
  ['messageBytes', 32, undefined, 'bytes per published message'],
  ['waiters', [1000, 10000], [1000], 'fan-out and many-channels: waiting gets'],
  ['rounds', 5, 3, 'fan-out: publishes per run'],
  [
    'roundPause',
    200,
    undefined,
    "fan-out: milliseconds between a round's last delivery (long-poll: every get waiting again) and the next publish; subscribers idle longer cost the target more to wake (bench/report/notes.md)",
  ],
  ['idle', [1000, 10000, 18000], [1000], 'idle capacity: idle waiting gets'],
  ['threads', powersOfTwoUpTo(Math.max(2, cores)), undefined, 'thread scaling: thread (worker) counts'],
  ['scalingWaiters', 1000, undefined, 'thread scaling: waiters of its fan-out runs'],
  ['publishers', 16, undefined, 'many channels: keep-alive connections the publishes go over'],
  [
    'clusterTargets',
    ['comet-1', 'redis-1', 'cluster-2'],
    undefined,
    'cluster mode: the targets compared (not --target): put-many and fan-out on each, ratios to the in-memory comet-N',
  ],
  ['clusterWaiters', [1000, 10000], [1000], 'cluster mode: waiters of its fan-out runs, spread evenly over the nodes'],
  ['streamWaiters', [1000, 10000], [1000], 'streams: subscribers of its fan-out runs, each holding a stream open'],
  ['streamIdle', [10000], [1000], 'streams: idle open streams of its memory runs'],
  ['transport', TRANSPORTS, undefined, `streams: the subscribers' transports: ${TRANSPORTS.join(', ')} (longpoll: comet-server's long-poll path beside them)`],
  ['authToken', '', undefined, 'auth: the token sent to comet-N-auth in place of the one its random secret signed (a token it refuses fails the run)'],
  ['pin', true, undefined, 'pin the target and the load generator to separate cores (taskset); --pin=false to not'],
  ['json', 'bench/results/latest.json', undefined, 'where the raw results go'],
  [
    'merge',
    '',
    undefined,
    'merge the results into this results file (e.g. BENCHMARKS-results.json): rows of the same scenario, case, waiters, threads and target are replaced, the rest kept; --report then renders the merged file',
  ],
  ['report', '', undefined, 'write the markdown report (and its charts) here, e.g. BENCHMARKS.md'],
  ['charts', 'bench/charts', undefined, 'where --report writes its SVG charts (linked from the report by a relative path)'],
  ['fromJson', '', undefined, 'do not measure: render --report from this results file'],
  ['runTimeout', 300, undefined, 'seconds one run may take before it counts as failed'],
  ['quick', false, undefined, 'a short pass: 1 run, short loads, the smallest counts'],
];

/** @param {string} name */
const flag = (name) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** @param {string} command */
export function usage(command) {
  const lines = OPTIONS.map(
    ([name, def, , help]) => `  ${flag(name).padEnd(18)} ${help} (default: ${Array.isArray(def) ? def.join(',') : def === '' ? 'none' : def})`,
  );
  return `usage: ${command} [options]\n${lines.join('\n')}`;
}

/**
 * Parses argv into options (quick defaults apply under --quick unless given).
 * @param {string[]} argv
 * @param {string} command
 * @returns {Options}
 */
export function parseOptions(argv, command) {
  const quick = argv.includes('--quick');
  const spec = /** @type {Options} */ (Object.fromEntries(OPTIONS.map(([name, def, quickDef]) => [name, quick && quickDef !== undefined ? quickDef : def])));
  const o = parseArgs(argv, /** @type {Options & Record<string, unknown>} */ (spec), usage(command));
  if (o.url && !argv.some((a) => a === '--target' || a.startsWith('--target='))) o.target = ['external'];
  for (const [name, min, max] of /** @type {const} */ ([
    ['runs', 1, 20],
    ['duration', 0.5, 600],
    ['connections', 1, 10_000],
    ['channels', 1, 1_000_000],
    ['rounds', 1, 100],
    ['roundPause', 0, 10_000],
  ])) {
    if (!(o[name] >= min && o[name] <= max)) throw new Error(`${flag(name)} must be within ${min}..${max}`);
  }
  if (!['autocannon', 'wrk'].includes(o.generator)) throw new Error(`--generator must be autocannon or wrk, got ${o.generator}`);
  for (const x of o.transport) if (!TRANSPORTS.includes(/** @type {any} */ (x))) throw new Error(`--transport must be of ${TRANSPORTS.join(', ')}, got ${x}`);
  for (const n of [...o.waiters, ...o.idle, ...o.clusterWaiters, ...o.streamWaiters, ...o.streamIdle]) {
    if (!Number.isInteger(n) || n < 1 || n > 60_000) throw new Error(`waiter counts must be 1..60000, got ${n}`);
  }
  return o;
}

/**
 * The settings every scenario reads, from parsed options.
 * @param {Options} o
 */
export function settingsFrom(o) {
  return {
    cores,
    runs: o.runs,
    durationS: o.duration,
    warmupS: o.warmup,
    connections: o.connections,
    generator: o.generator,
    cases: o.case,
    channels: o.channels,
    messageBytes: o.messageBytes,
    waiters: o.waiters,
    rounds: o.rounds,
    idle: o.idle,
    threads: o.threads,
    scalingWaiters: o.scalingWaiters,
    publishers: o.publishers,
    clusterTargets: o.clusterTargets.map(String),
    clusterWaiters: o.clusterWaiters,
    streamWaiters: o.streamWaiters,
    streamIdle: o.streamIdle,
    transports: /** @type {import('./load/messages.js').Transport[]} */ (o.transport),
    authToken: o.authToken,
    pinning: o.pin ? defaultPinning(cores) : null,
    warmupWaiters: 200,
    settleMs: o.quick ? 500 : 2000,
    roundPauseMs: o.roundPause,
    roundTimeoutMs: 60_000,
    runTimeoutS: o.runTimeout,
  };
}
