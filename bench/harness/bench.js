// Measuring and reporting as library calls, shared by comet-bench
// (bench/cli.js) and the release gate (bench/gate.js).

import fs from 'node:fs';
import path from 'node:path';
import { progress } from '../lib/common.js';
import { writeCharts } from '../report/charts.js';
import { renderReport } from '../report/markdown.js';
import { finishMeta, startMeta } from './meta.js';
import { describe, plan, runPlan } from './runner.js';
import { settingsFrom } from './settings.js';
import { hasTaskset, pin } from './cpu.js';
import { hasWrk } from './load/wrk-load.js';
import { describeTarget, missingFor } from './targets.js';

/**
 * @typedef {import('./types.js').Results} Results
 * @typedef {import('./types.js').Entry} Entry
 */

const NOTES = new URL('../report/notes.md', import.meta.url);

/**
 * Measures what the parsed options ask for; resolves the results object (see bench/README.md).
 * @param {import('./settings.js').Options} o
 * @param {string} command
 * @returns {Promise<Results>}
 */
export async function measure(o, command) {
  const settings = settingsFrom(o);
  const external = { url: o.url, adapter: o.adapter, pid: o.pid, label: o.label };
  for (const id of o.target) describeTarget(id, external);
  const units = plan({ scenarios: o.scenario, targets: o.target, settings });
  const targets = [...new Set(units.map((u) => u.target))];
  for (const id of targets) {
    describeTarget(id, external);
    const missing = missingFor(id);
    if (missing) throw new Error(`target ${id}: ${missing}`);
  }
  if (o.generator === 'wrk' && o.scenario.some((s) => ['throughput', 'scaling', 'cluster', 'auth', 'limits'].includes(s)) && !hasWrk()) {
    throw new Error('--generator wrk: wrk is not installed (apt-get install wrk)');
  }
  if (settings.pinning && !hasTaskset()) throw new Error('pinning needs taskset (apt-get install util-linux), or --pin=false');
  // before pinning: the machine's cores, not the ones left to this process
  const meta = startMeta(command, settings);
  // this process publishes and probes too: it belongs with the load, away from the target
  if (settings.pinning) pin([process.pid], settings.pinning.load);
  progress(
    `${units.length} measurements × ${settings.runs} runs; targets ${targets.join(', ')}; ` +
      (settings.pinning ? `server pinned to cores ${settings.pinning.server}, load to ${settings.pinning.load}` : 'nothing pinned'),
  );
  const { entries, failures } = await runPlan(units, { settings, external });
  return {
    meta: finishMeta(meta),
    targets: targets.map((id) => {
      const { adapterRef, ...d } = describeTarget(id, external);
      return d;
    }),
    entries,
    failures,
  };
}

/**
 * What an entry measured, and on which target: two entries with the same key are the same row.
 * @param {Entry} e
 */
export const entryKey = (e) => JSON.stringify([e.scenario, e.case ?? null, e.waiters ?? null, e.threads ?? null, e.target]);

/**
 * The results of base with those of fresh (a later run, usually a subset)
 * merged in: each entry of fresh replaces base's entry with the same key in
 * its place, or is added; base's other entries are kept, and so are its
 * failures except those of the rows replaced. base's meta stays the report's
 * header; meta.merges lists each run merged in (its meta: command, date,
 * machine, versions, settings, ...; and rows, what it measured), and an entry from such a
 * run carries `merge`, its index there. A merged run none of whose rows are
 * left is dropped from the list. Neither argument is changed.
 * @param {Results} base
 * @param {Results} fresh
 * @returns {Results}
 */
export function mergeResults(base, fresh) {
  const freshKeys = new Map(fresh.entries.map((e) => [entryKey(e), e]));
  const previous = base.meta?.merges ?? [];
  const index = previous.length;
  const { startedAt: _started, merges: _nested, ...freshMeta } = fresh.meta ?? {};
  const merges = [...previous, { ...freshMeta, rows: fresh.entries.map(describe) }];
  /** @param {Entry} e */
  const tag = (e) => ({ ...e, merge: index });
  const entries = base.entries.map((e) => {
    const replacement = freshKeys.get(entryKey(e));
    return replacement ? tag(replacement) : e;
  });
  const present = new Set(base.entries.map(entryKey));
  entries.push(...fresh.entries.filter((e) => !present.has(entryKey(e))).map(tag));
  const replaced = fresh.entries.map((e) => `${describe(e)} run `);
  const failures = [
    ...(base.failures ?? []).filter((f) => !replaced.some((p) => f.what.startsWith(p))),
    ...(fresh.failures ?? []).map((f) => ({ ...f, merge: index })),
  ];
  // renumber the merged runs that still have rows (or failures), in order
  const used = [...new Set([...entries, ...failures].map((x) => x.merge).filter((m) => m !== undefined))].sort((a, b) => a - b);
  /** @template {{ merge?: number }} X @param {X} x @returns {X} */
  const renumber = (x) => (x.merge === undefined ? x : { ...x, merge: used.indexOf(x.merge) });
  const targets = [
    ...base.targets.map((t) => fresh.targets.find((f) => f.id === t.id) ?? t),
    ...fresh.targets.filter((f) => !base.targets.some((t) => t.id === f.id)),
  ];
  return {
    ...base,
    meta: { ...base.meta, merges: used.map((i) => merges[i]) },
    targets,
    entries: entries.map(renumber),
    failures: failures.map(renumber),
  };
}

/**
 * @param {string} file
 * @param {Results} results
 */
export function writeJson(file, results) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(results, null, 1) + '\n');
  progress(`wrote ${file}`);
}

/**
 * Writes the markdown report to file and its SVG charts to chartsDir.
 * @param {string} file
 * @param {Results} results
 * @param {string} chartsDir
 */
export function writeReport(file, results, chartsDir) {
  const absCharts = path.resolve(chartsDir);
  const chartFiles = writeCharts(results, absCharts);
  const notes = fs.existsSync(NOTES) ? fs.readFileSync(NOTES, 'utf8') : '';
  const linkDir =
    path
      .relative(path.dirname(path.resolve(file)), absCharts)
      .split(path.sep)
      .join('/') || '.';
  fs.writeFileSync(file, renderReport(results, { notes, chartsDir: linkDir, chartFiles }));
  progress(`wrote ${file} and ${chartFiles.length} charts in ${chartsDir}`);
}
