// Shared helpers for the benchmark scripts in bench/: argument parsing, machine
// info, statistics, markdown output. Plain ESM, no dependencies.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Parses `--name value` and `--flag` arguments against a spec of defaults.
 * A default that is a number parses as a number, an array as a comma list of
 * numbers (or strings), a boolean as a flag (`--flag` or `--flag=false`).
 */
export function parseArgs(argv, spec, usage) {
  const out = structuredClone(spec);
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(usage + '\n');
      process.exit(0);
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${usage}`);
    a = a.slice(2);
    let value;
    const eq = a.indexOf('=');
    if (eq >= 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const key = a.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in spec)) throw new Error(`unknown option --${a}\n${usage}`);
    const def = spec[key];
    if (typeof def === 'boolean') {
      out[key] = value === undefined ? true : !/^(0|false|no)$/i.test(value);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error(`--${a} needs a value\n${usage}`);
      value = argv[++i];
    }
    if (typeof def === 'number') {
      const n = Number(value.replace(/_/g, ''));
      if (!Number.isFinite(n)) throw new Error(`--${a} wants a number, got ${value}`);
      out[key] = n;
    } else if (Array.isArray(def)) {
      const parts = value.split(',').map((s) => s.trim()).filter(Boolean);
      out[key] = parts.map((s) => (/^[\d_]+$/.test(s) ? Number(s.replace(/_/g, '')) : s));
    } else {
      out[key] = value;
    }
  }
  return out;
}

export function cpuModel() {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(text);
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

export function machineInfo() {
  const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  let fdLimit = 'unknown';
  try {
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    if (m) fdLimit = m[1];
  } catch {
    /* not Linux */
  }
  return {
    cores,
    cpu: cpuModel(),
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    fdLimit,
  };
}

/** The exact command line, quoted so that it can be pasted back into a shell. */
export function commandLine() {
  const q = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const script = path.relative(process.cwd(), process.argv[1]) || process.argv[1];
  return ['node', script, ...process.argv.slice(2)].map(q).join(' ');
}

export function headerLines(title) {
  const m = machineInfo();
  return [
    `## ${title}`,
    '',
    `- Command: \`${commandLine()}\``,
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${m.cores} cores, ${m.cpu}, ${m.memGiB} GiB RAM, ${m.os}, open-files limit ${m.fdLimit}`,
    `- Node ${m.node} (V8 ${m.v8})`,
    '',
  ];
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** "median (min–max)" of a list, formatted by fmt; a single value prints alone. */
export function mmm(xs, fmt = (x) => String(x)) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return 'n/a';
  if (v.length === 1) return fmt(v[0]);
  return `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
}

export function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtMiB(bytes) {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function fmtFixed(digits) {
  return (n) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function markdownTable(headers, rows) {
  const esc = (c) => String(c).replace(/\|/g, '\\|');
  const lines = [`| ${headers.map(esc).join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

/** Prints the report and, with an --out path, writes it there too. */
export function emit(markdown, outPath) {
  process.stdout.write(markdown.endsWith('\n') ? markdown : markdown + '\n');
  if (outPath) {
    fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
    fs.writeFileSync(outPath, markdown.endsWith('\n') ? markdown : markdown + '\n');
    process.stderr.write(`wrote ${outPath}\n`);
  }
}

export function progress(msg) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects after ms with a message naming what took too long. */
export function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}
