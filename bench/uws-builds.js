#!/usr/bin/env node
// The uWebSockets.js builds side by side on the Node.js running this script:
// the release gate's measurement (comet-1 and the bare ceiling, put and sync
// CPU, fan-out to 1,000 waiters) once per build and round, builds alternating
// in order from round to round, each target on the build under test
// (COMET_UWS_BUILD). Prints, per build, the median of each figure over the
// rounds and the ratio to the ceiling of the same build.
//
//   npm run bench:uws-builds                       every shipped build that loads here, 3 rounds of 5 s loads
//   npm run bench:uws-builds -- --short --rounds 5 2 s loads
//
// Only builds that load on this Node.js and C library take part: on glibc
// 2.38 or newer both shipped builds run on Node 20 and 22 (the Debian 13 root
// of .ci/with-node gives one); elsewhere there is one.

import { spawnSync } from 'node:child_process';
import { shortVersion, UWS_BUILDS } from '../dist/uws.js';
import { measure, writeJson } from './harness/bench.js';
import { evaluate, gateArguments, loadChecks } from './harness/gate.js';
import { parseOptions } from './harness/settings.js';
import { markdownTable, median, progress } from './lib/common.js';
import { serverMain } from './lib/server.js';

const COMMAND = 'npm run bench:uws-builds';

/**
 * The server's own verdict: `--help` loads the build first and exits 0 only when it loaded.
 * @param {string} pin
 */
function loadsHere(pin) {
  return spawnSync(process.execPath, [serverMain, '--uws-build', pin, '--help'], { stdio: 'ignore' }).status === 0;
}

/** @param {string} name @param {string} fallback */
function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : fallback;
}

try {
  const short = process.argv.includes('--short');
  const rounds = Number(option('rounds', '3'));
  const pins = UWS_BUILDS.map(shortVersion).filter(loadsHere);
  if (pins.length === 0) throw new Error('no shipped uWebSockets.js build loads here');
  progress(`Node ${process.version}: builds ${pins.join(', ')}; ${rounds} rounds`);
  const checks = loadChecks();
  /** @type {Map<string, Map<string, import('./harness/gate.js').Verdict[]>>} build -> check name -> its verdicts */
  const figures = new Map(pins.map((p) => [p, new Map(checks.map((c) => [c.name, []]))]));
  /** @param {string} pin @param {string} check */
  const verdictsOf = (pin, check) => /** @type {import('./harness/gate.js').Verdict[]} */ (figures.get(pin)?.get(check));
  for (let round = 1; round <= rounds; round++) {
    for (const pin of round % 2 ? pins : [...pins].reverse()) {
      process.env.COMET_UWS_BUILD = pin;
      progress(`round ${round}/${rounds}: uWebSockets.js ${pin}`);
      const json = `bench/results/uws-${pin}-${round}.json`;
      const o = parseOptions([...gateArguments(checks, short), '--runs', '1', '--json', json], COMMAND);
      const results = await measure(o, `${COMMAND} (uWebSockets.js ${pin}, round ${round})`);
      writeJson(json, results);
      for (const v of evaluate(results, checks)) verdictsOf(pin, v.check.name).push(v);
    }
  }
  /** @param {number} x */
  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
  const rows = checks.map((check) => [
    check.name,
    ...pins.flatMap((pin) => {
      const vs = verdictsOf(pin, check.name);
      return [fmt(median(vs.map((v) => v.comet))), fmt(median(vs.map((v) => v.ceiling))), fmt(median(vs.map((v) => v.ratio)))];
    }),
  ]);
  const headers = ['check', ...pins.flatMap((pin) => [`comet-1 on ${pin}`, `ceiling on ${pin}`, `ratio on ${pin}`])];
  process.stdout.write(`Node ${process.version}, ${rounds} rounds${short ? ' of 2 s loads' : ''}; ratio: higher is better for comet-server\n\n`);
  process.stdout.write(markdownTable(headers, rows) + '\n');
} catch (err) {
  process.stderr.write(`${COMMAND}: ${/** @type {Error} */ (err).message}\n`);
  process.exit(2);
}
