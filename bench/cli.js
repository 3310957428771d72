#!/usr/bin/env node
// comet-bench: load-tests Simple Comet Protocol servers and writes a report.
//
//   npm run bench                                   every scenario and target, writes BENCHMARKS.md
//   npx comet-bench --scenario fanout --target comet-1,nchan-1
//   npx comet-bench --url http://10.0.0.5:8080/comet --scenario throughput --case put-many
//
// Targets are started and stopped here, pinned to their own cores; --url
// measures a server that runs elsewhere (its CPU and memory only with --pid).
// Results go to bench/results/latest.json; --merge FILE merges them into a
// results file kept with a report (rows measured again replaced, the rest
// kept); --report renders the markdown and the SVG charts (bench/charts/)
// from the results, or from the merged file. `--help` lists every option.

import fs from 'node:fs';
import { progress } from './lib/common.js';
import { measure, mergeResults, writeJson, writeReport } from './harness/bench.js';
import { parseOptions } from './harness/settings.js';

const COMMAND = 'comet-bench';
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

try {
  const o = parseOptions(process.argv.slice(2), COMMAND);
  /** @type {import('./harness/types.js').Results} */
  let results;
  if (o.fromJson) {
    results = JSON.parse(fs.readFileSync(o.fromJson, 'utf8'));
  } else {
    results = await measure(o, [COMMAND, ...process.argv.slice(2)].join(' '));
    writeJson(o.json, results);
  }
  // the exit code is this run's (or file's): failures kept from a merged file's earlier runs are not
  const { failures } = results;
  if (o.merge) {
    // the first merge into a file that is not there yet starts it
    if (fs.existsSync(o.merge)) results = mergeResults(JSON.parse(fs.readFileSync(o.merge, 'utf8')), results);
    writeJson(o.merge, results);
  }
  if (o.report) writeReport(o.report, results, o.charts);
  if (failures.length > 0) {
    progress(`${failures.length} run(s) failed:\n${failures.map((f) => `  ${f.what}: ${f.message}`).join('\n')}`);
    process.exitCode = 1;
  }
} catch (err) {
  process.stderr.write(`${COMMAND}: ${/** @type {Error} */ (err).message}\n`);
  process.exit(2);
}
