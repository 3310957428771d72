// CPU accounting and pinning on Linux: the CPU time of a target (every one of
// its processes and threads) and of the load generator, read before and after
// a measurement, so that a report can give CPU per operation and say which
// side ran out of CPU; and the split of the cores between the two.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { coreCount, procCpuUs } from '../lib/common.js';

export { coreCount };

/** Kernels built without schedstats have no schedstat files. */
const HAS_SCHEDSTAT = fs.existsSync('/proc/self/schedstat');

/**
 * CPU time (µs) a process has used so far, all threads, to the nanosecond:
 * the sum of /proc/PID/task/TID/schedstat. /proc/PID/stat counts in 10 ms
 * ticks, too coarse for a fan-out round of a few milliseconds; it remains the
 * fallback where schedstat is missing.
 * @param {number} pid
 */
export function processCpuUs(pid) {
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  if (!HAS_SCHEDSTAT) return procCpuUs(pid);
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns / 1000;
}

/**
 * CPU time (µs) used so far by all of pids together.
 * @param {number[]} pids
 */
export function cpuOf(pids) {
  let us = 0;
  for (const p of pids) us += processCpuUs(p);
  return us;
}

/**
 * CPU time (µs) so far of each named group of pids: {redis: [pid]} -> {redis: µs}.
 * @param {Record<string, number[]> | undefined} parts
 */
export function cpuOfParts(parts) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const [name, pids] of Object.entries(parts ?? {})) out[name] = cpuOf(pids);
  return out;
}

/**
 * The figures of each part of a target between two cpuOfParts() readings:
 * `${name}CpuUs` per operation and `${name}Cores` over wallMs, e.g.
 * {redisCpuUs, redisCores}. A part's CPU is also in the target's own figure.
 * @param {Record<string, number>} before
 * @param {Record<string, number>} after
 * @param {number} ops
 * @param {number} wallMs
 */
export function partFigures(before, after, ops, wallMs) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const name of Object.keys(after)) {
    const us = after[name] - (before[name] ?? 0);
    out[`${name}CpuUs`] = ops > 0 ? us / ops : NaN;
    out[`${name}Cores`] = us / 1000 / wallMs;
  }
  return out;
}

/**
 * "0-2,5" -> [0, 1, 2, 5]
 * @param {string | number} list
 */
export function parseCpuList(list) {
  /** @type {number[]} */
  const out = [];
  for (const part of String(list).split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

/**
 * Splits the machine between the target and the load generator: the server
 * gets the first half of the cores (at least one), the load the rest. On one
 * core there is nothing to split: null.
 * @returns {{ server: string, load: string } | null}
 */
export function defaultPinning(cores = coreCount()) {
  if (cores < 2) return null;
  const server = Math.max(1, Math.floor(cores / 2));
  return { server: server === 1 ? '0' : `0-${server - 1}`, load: server + 1 === cores ? String(server) : `${server}-${cores - 1}` };
}

export function hasTaskset() {
  return spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
}

/**
 * Pins every thread of every pid to the cores in cpuList ("0-3").
 * @param {number[]} pids
 * @param {string} cpuList
 */
export function pin(pids, cpuList) {
  for (const pid of pids) {
    const r = spawnSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`taskset -a -p -c ${cpuList} ${pid} failed: ${r.stderr.trim()}`);
  }
}
