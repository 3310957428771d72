// CPU accounting and pinning on Linux: a target's CPU time is read from
// /proc/PID/stat of every one of its processes (all threads included), the
// load generator's the same way, and the busy share of each core from
// /proc/stat, so that a report can say which side ran out of CPU.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { procCpuUs } from '../lib/common.js';

/**
 * CPU time (µs) a process has used so far, all threads, to the nanosecond:
 * the sum of /proc/PID/task/TID/schedstat. /proc/PID/stat counts in 10 ms
 * ticks, too coarse for a fan-out round of a few milliseconds; it remains the
 * fallback where schedstat is missing.
 */
export function processCpuUs(pid) {
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]);
    } catch {
      return procCpuUs(pid);
    }
  }
  return ns / 1000;
}

/** CPU time (µs) used so far by all of pids together. */
export function cpuOf(pids) {
  let us = 0;
  for (const p of pids) us += processCpuUs(p);
  return us;
}

export function coreCount() {
  return os.availableParallelism ? os.availableParallelism() : os.cpus().length;
}

/** Busy and total jiffies per core from /proc/stat, indexed by core number. */
export function coreTimes() {
  const out = [];
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
    out[Number(m[1])] = { busy, total: busy + f[3] + f[4] };
  }
  return out;
}

/** Busy share (0..1) of the given cores between two coreTimes() readings, averaged over them. */
export function busyShare(before, after, cores) {
  let busy = 0;
  let total = 0;
  for (const c of cores) {
    if (!before[c] || !after[c]) continue;
    busy += after[c].busy - before[c].busy;
    total += after[c].total - before[c].total;
  }
  return total > 0 ? busy / total : NaN;
}

/** "0-2,5" -> [0, 1, 2, 5] */
export function parseCpuList(list) {
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
 */
export function defaultPinning(cores = coreCount()) {
  if (cores < 2) return null;
  const server = Math.max(1, Math.floor(cores / 2));
  return { server: server === 1 ? '0' : `0-${server - 1}`, load: server + 1 === cores ? String(server) : `${server}-${cores - 1}` };
}

export function hasTaskset() {
  return spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
}

/** Pins every thread of every pid to the cores in cpuList ("0-3"). */
export function pin(pids, cpuList) {
  for (const pid of pids) {
    const r = spawnSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`taskset -a -p -c ${cpuList} ${pid} failed: ${r.stderr.trim()}`);
  }
}
