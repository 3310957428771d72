// The release gate's verdicts: each check of bench/gate.json compares a figure
// of comet-1 with the same figure of the ceiling from the same results, as a
// ratio oriented so that higher is better for comet-server.

import fs from 'node:fs';
import { median } from '../lib/common.js';

/**
 * @typedef {import('./types.js').Results} Results
 * @typedef {object} Check one check of bench/gate.json
 * @property {string} name
 * @property {'throughput' | 'fanout'} scenario
 * @property {string} [case]
 * @property {number} [waiters]
 * @property {string} figure
 * @property {boolean} [lowerIsBetter]
 * @property {number} minRatio
 * @typedef {{ check: Check, comet: number, ceiling: number, ratio: number, pass: boolean }} Verdict
 */

export const GATE_FILE = new URL('../gate.json', import.meta.url);

/**
 * The checks of bench/gate.json.
 * @param {URL | string} [file]
 * @returns {Check[]}
 */
export function loadChecks(file = GATE_FILE) {
  return JSON.parse(fs.readFileSync(file, 'utf8')).checks;
}

/**
 * Median of a check's figure over the matching entry's runs, NaN when there is none.
 * @param {Results} results
 * @param {Check} check
 * @param {string} target
 */
function figureOf(results, check, target) {
  const entry = results.entries.find(
    (e) =>
      e.scenario === check.scenario &&
      e.target === target &&
      (check.case === undefined || e.case === check.case) &&
      (check.waiters === undefined || e.waiters === check.waiters),
  );
  return entry && entry.runs.length > 0 ? median(entry.runs.map((r) => /** @type {number} */ (r[check.figure]))) : NaN;
}

/**
 * [{check, comet, ceiling, ratio, pass}]; a figure that is missing fails its check.
 * @param {Results} results
 * @param {Check[]} checks
 * @returns {Verdict[]}
 */
export function evaluate(results, checks) {
  return checks.map((check) => {
    const comet = figureOf(results, check, 'comet-1');
    const ceiling = figureOf(results, check, 'ceiling');
    const ratio = check.lowerIsBetter ? ceiling / comet : comet / ceiling;
    return { check, comet, ceiling, ratio, pass: ratio >= check.minRatio };
  });
}

/**
 * `results` with the runs of `more` added to the entry of the same scenario,
 * target, case and waiter count (entries `results` lacks are added), so that a
 * check judged again is judged on the median of every run of both measurements.
 * @param {Results} results
 * @param {Results} more
 * @returns {Results}
 */
export function pooled(results, more) {
  /** @param {import('./types.js').Entry} e */
  const key = (e) => `${e.scenario}\0${e.target}\0${e.case ?? ''}\0${e.waiters ?? ''}`;
  const entries = results.entries.map((e) => ({ ...e, runs: [...e.runs] }));
  const byKey = new Map(entries.map((e) => [key(e), e]));
  for (const e of more.entries) {
    const same = byKey.get(key(e));
    if (same === undefined) entries.push({ ...e, runs: [...e.runs] });
    else same.runs.push(...e.runs);
  }
  return { ...results, entries, failures: [...results.failures, ...more.failures] };
}

/**
 * The harness arguments of a gate measurement: comet-1 and the ceiling, on the
 * scenarios, throughput cases and fan-out sizes the checks name; `short` loads
 * for CI.
 * @param {Check[]} checks
 * @param {boolean} short
 */
export function gateArguments(checks, short) {
  const cases = [...new Set(checks.filter((c) => c.scenario === 'throughput').map((c) => c.case))];
  const waiters = [...new Set(checks.filter((c) => c.scenario === 'fanout').map((c) => c.waiters))];
  const scenarios = [...new Set(checks.map((c) => c.scenario))];
  return [
    '--scenario',
    scenarios.join(','),
    '--target',
    'comet-1,ceiling',
    ...(cases.length > 0 ? ['--case', cases.join(',')] : []),
    ...(waiters.length > 0 ? ['--waiters', waiters.join(',')] : []),
    '--runs',
    '3',
    '--duration',
    short ? '2' : '5',
    '--rounds',
    short ? '10' : '20',
  ];
}
