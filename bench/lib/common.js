// Shared helpers for the benchmark scripts in bench/: argument parsing, machine
// info, statistics, markdown output. Plain ESM, no dependencies.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Parses `--name value` and `--flag` arguments against a spec of defaults.
 * A default that is a number parses as a number, an array as a comma list of
 * numbers (or strings), a boolean as a flag (`--flag` or `--flag=false`).
 * @template {Record<string, unknown>} T
 * @param {string[]} argv
 * @param {T} spec
 * @param {string} usage
 * @returns {T}
 */
export function parseArgs(argv, spec, usage) {
  /** @type {Record<string, unknown>} */
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
    const key = a.replace(/-([a-z])/g, (_, /** @type {string} */ c) => c.toUpperCase());
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
      const parts = value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      out[key] = parts.map((s) => (/^[\d_]+$/.test(s) ? Number(s.replace(/_/g, '')) : s));
    } else {
      out[key] = value;
    }
  }
  return /** @type {T} */ (out);
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

/** Cores this process may run on. */
export function coreCount() {
  return os.availableParallelism ? os.availableParallelism() : os.cpus().length;
}

/** This process's open-files limit (soft; Node raises it to the hard one): a number, 'unlimited', or 'unknown' off Linux. */
export function openFileLimit() {
  try {
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    if (m) return m[1];
  } catch {
    /* not Linux */
  }
  return 'unknown';
}

export function machineInfo() {
  return {
    cores: coreCount(),
    cpu: cpuModel(),
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    fdLimit: openFileLimit(),
  };
}

/** The exact command line, quoted so that it can be pasted back into a shell. */
export function commandLine() {
  /** @param {string} s */
  const q = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const script = path.relative(process.cwd(), process.argv[1]) || process.argv[1];
  return ['node', script, ...process.argv.slice(2)].map(q).join(' ');
}

export function loadAverage() {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

/** Machine-wide busy CPU time so far, in microseconds (from /proc/stat), or null off Linux. */
export function systemBusyUs() {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
    return (busy * 1e6) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * Markdown header: title, command line, machine, Node. loadAtStart is the load
 * average read when the benchmark started (the machine may be shared).
 * @param {string} title
 * @param {string} [loadAtStart]
 */
export function headerLines(title, loadAtStart) {
  const m = machineInfo();
  return [
    `## ${title}`,
    '',
    `- Command: \`${commandLine()}\``,
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${m.cores} cores, ${m.cpu}, ${m.memGiB} GiB RAM, ${m.os}, open-files limit ${m.fdLimit}`,
    `- Node ${m.node} (V8 ${m.v8})`,
    `- Load average (1/5/15 min) at start: ${loadAtStart ?? 'n/a'}; at end: ${loadAverage()}`,
    '',
  ];
}

/** @param {number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * "median (min–max)" of a list, formatted by fmt; a single value prints alone.
 * @param {unknown[]} xs
 * @param {(x: number) => string} [fmt]
 */
export function mmm(xs, fmt = (x) => String(x)) {
  const v = /** @type {number[]} */ (xs.filter((x) => typeof x === 'number' && Number.isFinite(x)));
  if (v.length === 0) return 'n/a';
  if (v.length === 1) return fmt(v[0]);
  return `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
}

/** @param {number} n */
export function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}

/** @param {number} bytes */
export function fmtMiB(bytes) {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** @param {number} digits @returns {(n: number) => string} */
export function fmtFixed(digits) {
  return (n) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** @param {string[]} headers @param {unknown[][]} rows */
export function markdownTable(headers, rows) {
  /** @param {unknown} c */
  const esc = (c) => String(c).replace(/\|/g, '\\|');
  const lines = [`| ${headers.map(esc).join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

/**
 * Prints the report and, with an --out path, writes it there too.
 * @param {string} markdown
 * @param {string} [outPath]
 */
export function emit(markdown, outPath) {
  process.stdout.write(markdown.endsWith('\n') ? markdown : markdown + '\n');
  if (outPath) {
    fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
    fs.writeFileSync(outPath, markdown.endsWith('\n') ? markdown : markdown + '\n');
    process.stderr.write(`wrote ${outPath}\n`);
  }
}

/** @param {string} msg */
export function progress(msg) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

/** @param {number} ms @returns {Promise<void>} */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Rejects after ms with a message naming what took too long.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let t;
  /** @type {Promise<never>} */
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/**
 * Waits (at most maxMs) until the rest of the machine has used less than
 * `threshold` cores over a 1 s window: the machine may be shared with builds
 * and tests. Resolves the last measured figure (cores used by other processes).
 * @param {number} maxMs
 */
export async function waitQuiet(maxMs, threshold = 0.25) {
  if (!(maxMs > 0) || systemBusyUs() === null) return NaN;
  const deadline = Date.now() + maxMs;
  let other = NaN;
  for (;;) {
    const s0 = /** @type {number} */ (systemBusyUs());
    const c0 = process.cpuUsage();
    const t0 = Date.now();
    await sleep(1000);
    const c = process.cpuUsage(c0);
    other = Math.max(0, /** @type {number} */ (systemBusyUs()) - s0 - c.user - c.system) / 1000 / (Date.now() - t0);
    if (other < threshold || Date.now() >= deadline) return other;
  }
}

/**
 * CPU time (user + system, all threads) a process has used so far, in microseconds, from /proc/PID/stat.
 * @param {number} pid
 */
export function procCpuUs(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces: split after its closing parenthesis
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return 0;
  }
}

/**
 * A loopback port that was free a moment ago (the kernel's pick, released at once).
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}
