#!/usr/bin/env node
// Reads a report that ./markdown.js rendered (BENCHMARKS.md) back into a
// results object, for a report whose results file was not kept: `--merge`
// needs one to merge a later run into.
//
//   node bench/report/readback.js BENCHMARKS.md > BENCHMARKS-results.json
//
// The report shows each figure as median (min–max) over n runs, so each
// entry gets n runs whose figures are the min, the median (n - 2 times) and
// the max: rendered again, they give the same medians, minima and maxima, and
// the same counts of each "saturated" verdict. Figures the report does not
// show are not there, and every value is as rounded in the report (a ratio
// computed from them may differ from the original in its last digit).
// meta.readBack says so.

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmtInt, fmtMiB } from '../lib/common.js';
import { describeTarget } from '../harness/targets.js';
import { SECTIONS } from './markdown.js';

/** Settings whose value is a list even when it holds one item. */
const LIST_SETTINGS = new Set(['cases', 'waiters', 'idle', 'threads', 'clusterTargets', 'clusterWaiters']);

/** A number as fmtInt or fmtFixed printed it ("1,234", "-0.50"), or as fmtMiB ("68.6 MiB"). */
function parseNumber(text, fmt) {
  const t = text.trim();
  if (fmt === fmtMiB) {
    const m = /^(-?[\d.,]+) MiB$/.exec(t);
    if (!m) throw new Error(`not a MiB figure: ${t}`);
    return Number(m[1].replace(/,/g, '')) * 2 ** 20;
  }
  const n = Number(t.replace(/,/g, ''));
  if (!Number.isFinite(n)) throw new Error(`not a number: ${t}`);
  return n;
}

/** "m (a–b)" or "m" -> {median, min, max}; 'n/a' or '—' -> null. */
export function parseCell(text, fmt = fmtInt) {
  const t = text.trim();
  if (t === 'n/a' || t === '—' || t === '') return null;
  const m = /^(.+?) \((.+)–(.+)\)$/.exec(t);
  if (!m) {
    const v = parseNumber(t, fmt);
    return { median: v, min: v, max: v };
  }
  return { median: parseNumber(m[1], fmt), min: parseNumber(m[2], fmt), max: parseNumber(m[3], fmt) };
}

/** n values whose median, min and max are those given. */
export function runValues({ median, min, max }, n) {
  if (n === 1) return [median];
  return [min, ...Array(Math.max(0, n - 2)).fill(median), max];
}

/** "both ×2, server ×1" or "both" over n runs -> ['both', 'both', 'server']. */
export function parseBounds(text, n) {
  const t = text.trim();
  if (t === 'failed' || t === '') return [];
  if (!t.includes('×')) return Array(n).fill(t);
  return t.split(', ').flatMap((part) => {
    const [bound, count] = part.split(' ×');
    return Array(Number(count)).fill(bound);
  });
}

function splitRow(line) {
  // cells are separated by ' | '; an escaped \| belongs to a cell
  const inner = line.trim().replace(/^\|\s?/, '').replace(/\s?\|$/, '');
  return inner.split(/(?<!\\) \| /).map((c) => c.replace(/\\\|/g, '|'));
}

/** The markdown tables of a block of lines: [{headers, rows}]. */
function tablesIn(lines) {
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('| ') && lines[i + 1]?.startsWith('| ---')) {
      const headers = splitRow(lines[i]);
      const rows = [];
      let j = i + 2;
      for (; j < lines.length && lines[j].startsWith('| '); j++) rows.push(splitRow(lines[j]));
      out.push({ headers, rows });
      i = j;
    }
  }
  return out;
}

function parseDuration(text) {
  const m = /^(?:(\d+) min )?(\d+) s$/.exec(text.trim());
  return m ? Number(m[1] ?? 0) * 60 + Number(m[2]) : null;
}

function parseSetting(key, value) {
  if (value.startsWith('{') || value === 'null') return JSON.parse(value);
  if (value === 'true' || value === 'false') return value === 'true';
  const item = (v) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v);
  const parts = value.split(', ');
  if (LIST_SETTINGS.has(key) || (parts.length > 1 && parts.every((v) => /^-?\d+(\.\d+)?$/.test(v)))) return value === '' ? [] : parts.map(item);
  return item(value);
}

function parseHeader(lines) {
  const meta = {};
  const targets = [];
  let list = null;
  for (const line of lines) {
    let m;
    if ((m = /^- Command: `(.*)`$/.exec(line))) meta.command = m[1];
    else if ((m = /^- Date: (.*); took (.*)$/.exec(line))) {
      meta.date = m[1];
      meta.durationS = parseDuration(m[2]);
    } else if ((m = /^- Machine: (\d+) cores?, (.*), ([\d.]+) GiB RAM, (.*), Node (\S+) \(V8 (\S+)\), open-files limit (.*)$/.exec(line))) {
      meta.machine = { cores: Number(m[1]), cpu: m[2], memGiB: m[3], node: m[5], v8: m[6], os: m[4], fdLimit: m[7].replace(/,/g, '') };
    } else if ((m = /^- Versions: (.*)$/.exec(line))) {
      meta.versions = m[1] === 'unknown' ? {} : Object.fromEntries(
        m[1].split(', ').map((kv) => {
          const sp = kv.lastIndexOf(' ');
          return [kv.slice(0, sp), kv.slice(sp + 1)];
        }),
      );
    } else if ((m = /^- Load average \(1\/5\/15 min\): at start (.*); at end (.*)$/.exec(line))) {
      meta.loadAverage = { start: m[1], end: m[2] };
    } else if (line === '- Targets:') list = 'targets';
    else if (line === '- Settings:') {
      list = 'settings';
      meta.settings = {};
    } else if ((m = /^ {2}- `([^`]+)`: (.*)$/.exec(line)) && list === 'targets') {
      const { adapterRef, label: _l, ...d } = describeTarget(m[1], { url: 'http://external/' });
      targets.push({ ...d, label: m[2] });
    } else if ((m = /^ {2}- ([A-Za-z]+): (.*)$/.exec(line)) && list === 'settings') {
      meta.settings[m[1]] = parseSetting(m[1], m[2]);
    } else if (line.startsWith('- ')) list = null;
  }
  meta.pinning = meta.settings?.pinning ?? null;
  return { meta, targets };
}

/** "server 0, load 1" -> {server: '0', load: '1'}; 'not pinned' -> null. */
function parsePin(text) {
  const m = /^server (\S+), load (\S+)$/.exec(text.trim());
  return m ? { server: m[1], load: m[2] } : null;
}

/**
 * The results object a report was rendered from, as far as the report shows
 * it (see the top of this file).
 * @param {string} markdown the report's text
 * @param {string} [source] where it was read from, for meta.readBack
 */
export function readReport(markdown, source = 'the report') {
  const lines = markdown.split('\n');
  const firstSection = lines.findIndex((l) => l.startsWith('## '));
  const { meta, targets } = parseHeader(lines.slice(0, firstSection < 0 ? lines.length : firstSection));
  const idOf = new Map(targets.map((t) => [t.label, t.id]));
  const entries = [];
  const failures = [];
  // the sections, each with its lines up to the next '## '
  const sections = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('## ')) sections.push({ title: lines[i].slice(3), start: i + 1 });
  }
  sections.forEach((s, k) => (s.end = k + 1 < sections.length ? sections[k + 1].start - 1 : lines.length));
  for (const section of sections) {
    const body = lines.slice(section.start, section.end);
    if (section.title === 'Failures') {
      for (const line of body) {
        const m = /^- (.+? run \d+(?:\/\d+)?): (.*)$/.exec(line);
        if (m) failures.push({ what: m[1], message: m[2] });
        else if (line.startsWith('  ') && failures.length) failures.at(-1).message += `\n${line.slice(2)}`;
      }
      continue;
    }
    const scenario = SECTIONS.find((s) => s.title === section.title);
    if (!scenario) continue;
    // each table under its ### heading, or the section's one table
    const blocks = [];
    let current = { heading: null, lines: [] };
    for (const line of body) {
      if (line.startsWith('### ')) {
        blocks.push(current);
        current = { heading: line.slice(4), lines: [] };
      } else current.lines.push(line);
    }
    blocks.push(current);
    for (const block of blocks) {
      const spec = scenario.tables.find((t) => (t.heading ?? null) === block.heading);
      if (!spec) continue;
      for (const { headers, rows } of tablesIn(block.lines)) {
        const col = (head) => headers.indexOf(head);
        for (const cells of rows) {
          const label = cells[col('target')];
          const target = idOf.get(label);
          if (!target) throw new Error(`${section.title}: no target labelled ${label} in the header`);
          const n = Number(cells[col('runs')]);
          const e = { scenario: scenario.id, ...(spec.where ?? {}) };
          for (const id of spec.ids) e[id.key] = id.key === 'case' ? cells[col(id.head)] : Number(cells[col(id.head)].replace(/,/g, ''));
          e.target = target;
          if (scenario.id === 'scaling') e.pin = parsePin(cells[col('CPUs')]);
          // an entry whose runs all failed shows 0 runs and 'failed' figures
          const runs = Array.from({ length: n }, () => ({}));
          for (const [head, field, fmt] of spec.figures) {
            const v = n > 0 ? parseCell(cells[col(head)], fmt) : null;
            if (v) runValues(v, n).forEach((x, i) => (runs[i][field] = x));
          }
          if (spec.bound) parseBounds(cells[col('saturated')], n).forEach((b, i) => (runs[i].bound = b));
          e.runs = runs;
          entries.push(e);
        }
      }
    }
  }
  return {
    meta: {
      ...meta,
      readBack: `read back from ${source} by bench/report/readback.js: each run's figures are the min, the median and the max the report shows (their median is the median shown); figures the report does not show are not here`,
    },
    targets,
    entries,
    failures,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/report/readback.js REPORT.md > RESULTS.json\n');
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(readReport(fs.readFileSync(file, 'utf8'), file), null, 1) + '\n');
}
