#!/usr/bin/env node
// The release gate: a short benchmark of comet-1 against the bare
// uWebSockets.js ceiling, in one run, failing when a ratio falls below its
// threshold in bench/gate.json.
//
//   npm run bench:gate               3 runs of 5 s loads
//   npm run bench:gate -- --short    3 runs of 2 s loads (what .ci/run runs)
//
// Ratios, not absolute figures: the machine is shared and noisy, but both
// targets see the same noise.

import fs from 'node:fs';
import { markdownTable, median, progress } from './lib/common.js';
import { measure } from './harness/bench.js';
import { parseOptions } from './harness/settings.js';

const COMMAND = 'npm run bench:gate';
const config = JSON.parse(fs.readFileSync(new URL('./gate.json', import.meta.url), 'utf8'));

/** Median of a figure over an entry's runs, NaN when it has none. */
function figureOf(results, check, target) {
  const entry = results.entries.find(
    (e) => e.scenario === check.scenario && e.target === target && (check.case === undefined || e.case === check.case) && (check.waiters === undefined || e.waiters === check.waiters),
  );
  return entry && entry.runs.length > 0 ? median(entry.runs.map((r) => r[check.figure])) : NaN;
}

/** [{check, comet, ceiling, ratio, pass}] */
export function evaluate(results, checks = config.checks) {
  return checks.map((check) => {
    const comet = figureOf(results, check, 'comet-1');
    const ceiling = figureOf(results, check, 'ceiling');
    const ratio = check.lowerIsBetter ? ceiling / comet : comet / ceiling;
    return { check, comet, ceiling, ratio, pass: ratio >= check.minRatio };
  });
}

const short = process.argv.includes('--short');
const argv = process.argv.slice(2).filter((a) => a !== '--short');
const cases = [...new Set(config.checks.filter((c) => c.scenario === 'throughput').map((c) => c.case))];
const waiters = [...new Set(config.checks.filter((c) => c.scenario === 'fanout').map((c) => c.waiters))];
const o = parseOptions(
  [
    '--scenario', 'throughput,fanout',
    '--target', 'comet-1,ceiling',
    '--case', cases.join(','),
    '--waiters', waiters.join(','),
    '--runs', '3',
    '--duration', short ? '2' : '5',
    '--rounds', short ? '3' : '5',
    '--json', 'bench/results/gate.json',
    ...argv,
  ],
  COMMAND,
);
try {
  const results = await measure(o, `${COMMAND}${short ? ' -- --short' : ''}`);
  const verdicts = evaluate(results);
  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
  process.stdout.write(
    markdownTable(
      ['check', 'comet-1', 'ceiling', 'ratio', 'threshold', 'verdict'],
      verdicts.map((v) => [v.check.name, fmt(v.comet), fmt(v.ceiling), fmt(v.ratio), `≥ ${v.check.minRatio}`, v.pass ? 'pass' : 'FAIL']),
    ) + '\n',
  );
  const failed = verdicts.filter((v) => !v.pass);
  if (failed.length > 0 || results.failures.length > 0) {
    progress(`gate failed: ${[...failed.map((v) => v.check.name), ...results.failures.map((f) => f.what)].join('; ')}`);
    process.exit(1);
  }
  progress('gate passed');
} catch (err) {
  process.stderr.write(`${COMMAND}: ${err.message}\n`);
  process.exit(2);
}
