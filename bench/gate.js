#!/usr/bin/env node
// The release gate: a short benchmark of comet-1 against the bare
// uWebSockets.js ceiling, in one run, failing when a ratio falls below its
// threshold in bench/gate.json.
//
//   npm run bench:gate               3 runs of 5 s loads
//   npm run bench:gate -- --short    3 runs of 2 s loads (what .ci/run runs)
//   npm run bench:gate -- --checks FILE   the checks of FILE instead of bench/gate.json
//
// Ratios, not absolute figures: the machine is shared and noisy, but both
// targets see the same noise.

import { markdownTable, progress } from './lib/common.js';
import { measure, writeJson } from './harness/bench.js';
import { evaluate, gateArguments, loadChecks } from './harness/gate.js';
import { parseOptions } from './harness/settings.js';

const COMMAND = 'npm run bench:gate';
try {
  const checksAt = process.argv.indexOf('--checks');
  const checks = loadChecks(checksAt > 0 ? process.argv[checksAt + 1] : undefined);

  const short = process.argv.includes('--short');
  const argv = process.argv.slice(2).filter((a, i, all) => a !== '--short' && a !== '--checks' && all[i - 1] !== '--checks');
  const o = parseOptions([...gateArguments(checks, short), '--json', 'bench/results/gate.json', ...argv], COMMAND);
  const results = await measure(o, `${COMMAND}${short ? ' -- --short' : ''}`);
  writeJson(o.json, results);
  const verdicts = evaluate(results, checks);
  /** @param {number} x */
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
  process.stderr.write(`${COMMAND}: ${/** @type {Error} */ (err).message}\n`);
  process.exit(2);
}
