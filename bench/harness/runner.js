// Runs a benchmark plan: every (scenario, case, target) as many times as
// settings.runs, round-robin (run 1 of everything, then run 2, ...) so that a
// slow spell of the machine lands on every target rather than on one. Each
// run gets a freshly started target, pinned to the server's cores, and is
// bounded in time; a failed run is recorded and the plan goes on.

import { progress, withTimeout } from '../lib/common.js';
import * as auth from './scenarios/auth.js';
import * as limits from './scenarios/limits.js';
import * as channels from './scenarios/channels.js';
import { killAll } from './load/children.js';
import { createContext } from './scenarios/context.js';
import * as fanout from './scenarios/fanout.js';
import * as idle from './scenarios/idle.js';
import * as streams from './scenarios/streams.js';
import * as throughput from './scenarios/throughput.js';
import { startTarget } from './targets.js';

export const SCENARIOS = ['throughput', 'fanout', 'channels', 'idle', 'scaling', 'cluster', 'auth', 'limits', 'streams'];

/**
 * @typedef {import('./types.js').Run} Run
 * @typedef {import('./types.js').Entry} Entry
 * @typedef {import('./types.js').Failure} Failure
 * @typedef {import('./settings.js').Settings} Settings
 * @typedef {import('./scenarios/context.js').Context} Context
 * @typedef {object} Unit one (scenario, case, target) to measure
 * @property {string} scenario
 * @property {string} [case]
 * @property {number} [waiters]
 * @property {number} [threads]
 * @property {string} target
 * @property {Settings['pinning']} pin
 * @property {(ctx: Context) => Promise<Run>} run
 */

/**
 * The units of work, one per (scenario, case, target), without runs:
 * {scenario, case?, waiters?, threads?, target, pin, run(ctx)}. The scaling
 * and cluster scenarios measure put-many and fan-out again on targets of
 * their own (settings.threads, settings.clusterTargets), so that their rows
 * never replace those of the throughput and fan-out scenarios; the auth
 * scenario has its own pair of targets, comet-1 without and with --auth all,
 * and so has the limits scenario (comet-1-limits). The streams scenario
 * measures fan-out and idle again with streaming subscribers (./scenarios/streams.js).
 * @param {{ scenarios: string[], targets: string[], settings: Settings }} what
 * @returns {Unit[]}
 */
export function plan({ scenarios, targets, settings }) {
  /** @type {Unit[]} */
  const units = [];
  /** @param {Unit} u */
  const add = (u) => units.push(u);
  for (const scenario of scenarios) {
    if (scenario === 'throughput') {
      for (const c of settings.cases)
        for (const target of targets) add({ scenario, case: c, target, pin: settings.pinning, run: (ctx) => throughput.run(ctx, c) });
    } else if (scenario === 'fanout' || scenario === 'channels') {
      const mod = scenario === 'fanout' ? fanout : channels;
      for (const w of settings.waiters)
        for (const target of targets) add({ scenario, waiters: w, target, pin: settings.pinning, run: (ctx) => mod.run(ctx, w) });
    } else if (scenario === 'idle') {
      for (const n of settings.idle) for (const target of targets) add({ scenario, waiters: n, target, pin: settings.pinning, run: (ctx) => idle.run(ctx, n) });
    } else if (scenario === 'scaling') {
      // every kind of target that has a thread count, at each count
      const kinds = [...new Set(targets.map((t) => /^(comet|nchan)-\d+$/.exec(t)?.[1]).filter(Boolean))];
      for (const n of settings.threads) {
        for (const kind of kinds) {
          const target = `${kind}-${n}`;
          add({ scenario, case: 'put-many', threads: n, target, pin: settings.pinning, run: (ctx) => throughput.run(ctx, 'put-many') });
          add({
            scenario,
            case: 'fanout',
            threads: n,
            waiters: settings.scalingWaiters,
            target,
            pin: settings.pinning,
            run: (ctx) => fanout.run(ctx, settings.scalingWaiters),
          });
        }
      }
    } else if (scenario === 'cluster') {
      // in-memory against Redis-backed, one node against several: side by side, round-robin like the rest
      for (const target of settings.clusterTargets)
        add({ scenario, case: 'put-many', target, pin: settings.pinning, run: (ctx) => throughput.run(ctx, 'put-many') });
      for (const w of settings.clusterWaiters) {
        for (const target of settings.clusterTargets)
          add({ scenario, case: 'fanout', waiters: w, target, pin: settings.pinning, run: (ctx) => fanout.run(ctx, w) });
      }
    } else if (scenario === 'auth') {
      // without and with access control, side by side, round-robin like the rest
      for (const c of auth.CASES) for (const target of auth.TARGETS) add({ scenario, case: c, target, pin: settings.pinning, run: (ctx) => auth.run(ctx, c) });
    } else if (scenario === 'limits') {
      // without and with the per-client limits, side by side, round-robin like the rest
      for (const c of limits.CASES)
        for (const target of limits.TARGETS) add({ scenario, case: c, target, pin: settings.pinning, run: (ctx) => limits.run(ctx, c) });
    } else if (streams.NAMES.includes(scenario)) {
      // streaming subscribers beside long-polls: fan-out and idle rows of their own
      for (const u of streams.plan(scenario, targets, settings)) add(u);
    } else {
      throw new Error(`unknown scenario ${scenario}: ${[...SCENARIOS, ...streams.NAMES.slice(1)].join(', ')}`);
    }
  }
  return units;
}

/** @param {number} ms */
const fmtDuration = (ms) => {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

/**
 * "fanout W=1000 comet-1": a unit (or an entry) as progress lines and failures name it.
 * @param {{ scenario: string, case?: string, waiters?: number, target: string }} u
 */
export function describe(u) {
  const what = [u.scenario, u.case, u.waiters !== undefined ? `W=${u.waiters}` : null].filter(Boolean).join(' ');
  return `${what} ${u.target}`;
}

/**
 * Runs the plan; resolves {entries, failures}. Each entry is the unit's
 * description with runs: [metrics]. external: the --url target's options.
 * @param {Unit[]} units
 * @param {{ settings: Settings, external: import('./targets.js').External }} how
 * @returns {Promise<{ entries: Entry[], failures: Failure[] }>}
 */
export async function runPlan(units, { settings, external }) {
  /** @type {Entry[]} */
  const entries = units.map(({ run, pin, ...rest }) => ({ ...rest, ...(rest.scenario === 'scaling' ? { pin } : {}), runs: [] }));
  /** @type {Failure[]} */
  const failures = [];
  const total = units.length * settings.runs;
  const started = Date.now();
  let doneCount = 0;
  for (let r = 0; r < settings.runs; r++) {
    for (let i = 0; i < units.length; i++) {
      const u = units[i];
      const label = `${describe(u)} run ${r + 1}/${settings.runs}`;
      const elapsed = Date.now() - started;
      const left = doneCount > 0 ? (elapsed / doneCount) * (total - doneCount) : NaN;
      progress(`[${doneCount + 1}/${total}] ${label}  (${fmtDuration(elapsed)} so far${Number.isFinite(left) ? `, about ${fmtDuration(left)} left` : ''})`);
      try {
        const metrics = await runOnce(u, settings, external);
        entries[i].runs.push(metrics);
        progress(`    ${summarise(metrics)}`);
      } catch (e) {
        const err = /** @type {Error} */ (e);
        failures.push({ what: label, message: err.message.split('\n')[0] });
        progress(`    FAILED: ${err.message}`);
      }
      doneCount++;
    }
  }
  return { entries, failures };
}

/**
 * @param {Unit} unit
 * @param {Settings} settings
 * @param {import('./targets.js').External} external
 */
async function runOnce(unit, settings, external) {
  const target = await startTarget(unit.target, { pinCpus: unit.pin?.server ?? null, external });
  /** @type {Context | null} */
  let ctx = null;
  try {
    ctx = await createContext(target, settings, unit.pin);
    return await withTimeout(unit.run(ctx), settings.runTimeoutS * 1000, describe(unit));
  } catch (err) {
    const log = target.log();
    if (log) /** @type {Error} */ (err).message += `\n${target.label} log tail:\n${log}`;
    throw err;
  } finally {
    ctx?.close();
    // nothing of this run may load the machine during the next one
    killAll();
    await withTimeout(target.stop(), 15_000, `stopping ${target.label}`).catch(() => target.kill());
  }
}

/** @type {[figure: string, say: (v: number | string) => string | null][]} */
const FIGURES = [
  ['rps', (v) => `${Math.round(Number(v))} req/s`],
  ['deliveriesPerSec', (v) => `${Math.round(Number(v))} deliveries/s`],
  ['bytesPerWaiter', (v) => `${Math.round(Number(v))} B per subscriber`],
  ['p50Ms', (v) => `p50 ${Number(v).toFixed(2)} ms`],
  ['p99Ms', (v) => `p99 ${Number(v).toFixed(2)} ms`],
  ['maxMs', (v) => `max ${Number(v).toFixed(1)} ms`],
  ['deliverMs', (v) => `all delivered in ${Number(v).toFixed(1)} ms`],
  ['serverCpuUs', (v) => `server ${Number(v).toFixed(2)} µs CPU/op`],
  ['rearmCpuUs', (v) => `re-arming ${Number(v).toFixed(2)} µs CPU/op`],
  ['gcMsPer1k', (v) => `GC ${Number(v).toFixed(2)} ms/1k req`],
  ['serverCores', (v) => `server ${Number(v).toFixed(2)} cores`],
  ['clientCpuUs', (v) => `clients ${Number(v).toFixed(2)} µs CPU/op`],
  ['loadCores', (v) => `load ${Number(v).toFixed(2)} cores`],
  ['bound', (v) => `bound: ${v}`],
  ['non2xx', (v) => (v ? `${v} non-2xx` : null)],
  ['errors', (v) => (v ? `${v} errors` : null)],
];

/** @param {Run} m */
function summarise(m) {
  return FIGURES.filter(([k]) => m[k] !== undefined && m[k] !== null)
    .map(([k, f]) => f(/** @type {number | string} */ (m[k])))
    .filter(Boolean)
    .join(', ');
}
