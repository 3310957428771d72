/**
 * The load-test harness's commands (comet-bench, bench/cli.js, and the
 * release gate, bench/gate.js) as child processes, for the tests that run
 * them for real (test/bench-harness.test.ts, test/bench-cluster.test.ts):
 * the results file's shape, a runner that notes every process the command
 * starts, and the /proc reads that tell whether any of them outlived it (a
 * load client, a redis-server or a node left behind would skew every later
 * measurement on the machine). Every command run here is SIGKILLed at its
 * deadline (and when this process exits), and every wait is bounded.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { ROOT, childEnv } from './server.js';
import { sleep } from './wait.js';

export const CLI = path.join(ROOT, 'bench', 'cli.js');
export const GATE = path.join(ROOT, 'bench', 'gate.js');

/** One short run of everything (--quick only shortens the idle scenario's settling). */
export const TINY = ['--runs', '1', '--duration', '1', '--warmup', '0.2', '--rounds', '2', '--connections', '10', '--quick'];

import type { Entry, Results, Run } from '../../bench/harness/types.js';

/** The results file comet-bench writes (--json) or merges into (--merge), its rows and their runs. */
export type { Entry, Results, Run };

/** How a command ran. */
export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the spawn to the exit. */
  ms: number;
  pid: number;
  /** True when it was SIGKILLed at its deadline. */
  timedOut: boolean;
  /** Every process the command started, children of children included, seen while it ran: pid -> command line. */
  seen: Map<number, string>;
}

export interface RunOptions {
  /** SIGKILL the command after this many milliseconds. */
  timeoutMs: number;
  /** Extra environment variables for the command (see childEnv). */
  env?: Record<string, string>;
}

/** A row's name in assertions: its scenario, then its case and waiters where it has them, then its target. */
export const describe = (e: Entry): string => [e.scenario, e.case, e.waiters, e.target].filter((x) => x !== undefined).join(' ');

/** What a failed assertion shows of a run: the end of what it wrote, where the error is. */
export const diag = (r: Ran) => ({ code: r.code, signal: r.signal, timedOut: r.timedOut, stderr: r.stderr.slice(-4000), stdout: r.stdout.slice(-1000) });

/**
 * Whether a tool the test needs is installed (`present`). When it is not,
 * the test fails under CI (CI=true, where it must be installed) and is
 * skipped elsewhere, saying `why`; the caller then returns.
 */
export function needs(t: Test, present: boolean, why: string): boolean {
  if (present) return true;
  if (process.env.CI === 'true') t.fail(why);
  else t.skip(why, () => {});
  return false;
}

export const WRK_MISSING = 'wrk is not installed: apt-get install wrk';

/** Whether wrk (--generator wrk) is on the PATH, as the shell finds it; see needs. */
export function wrkAvailable(t: Test): boolean {
  return needs(t, spawnSync('sh', ['-c', 'command -v wrk']).status === 0, WRK_MISSING);
}

/** The command line of a running process ('' once it is gone). */
export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Pids of the direct children of pid ([] once it is gone). */
export function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Pids of every process on the machine whose command line matches re. */
export function processesMatching(re: RegExp): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && re.test(cmdline(Number(d))))
    .map(Number);
}

/**
 * The processes of `procs` (pid, command line when seen) still running. A
 * pid counts only with the same command line: the kernel may have handed a
 * dead one's pid to another process since.
 */
export function stillRunning(procs: Iterable<[number, string]>): Array<[number, string]> {
  return [...procs].filter(([p, cmd]) => cmdline(p) === cmd);
}

/**
 * Polls `alive` until it comes back empty or `ms` pass, and returns what it
 * last returned. The processes a command started may take a moment to exit
 * after it did (their own shutdown, the kernel reaping them), which is no
 * leak; one still there after `ms` is.
 */
export async function outliving<T>(alive: () => T[], ms = 3000): Promise<T[]> {
  const deadline = Date.now() + ms;
  while (alive().length > 0 && Date.now() < deadline) await sleep(50);
  return alive();
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** After the command exits, how long its output may stay open (held by a process it left behind) before it is cut. */
const CLOSE_GRACE_MS = 5000;

/**
 * Runs `node script ...args` from the repository root until it exits
 * (SIGKILL after opts.timeoutMs), noting every 50 ms every process it has
 * started, children of children included: a short-lived one can be missed,
 * so a check for leftovers should also look for them by name
 * (processesMatching).
 */
export function runNode(script: string, args: string[], opts: RunOptions): Promise<Ran> {
  return new Promise((resolve) => {
    const started = performance.now();
    // No coverage for the harness and the servers it measures: instrumented code would turn
    // its figures, and the gate's ratios the tests check, into those of another program.
    const env = childEnv({ ...opts.env, NODE_V8_COVERAGE: undefined });
    const proc = spawn(process.execPath, [script, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    const seen = new Map<number, string>();
    let running = true;
    const watching = (async () => {
      while (running) {
        const todo = [proc.pid!];
        while (todo.length) {
          for (const c of childrenOf(todo.pop()!)) {
            if (!seen.has(c)) seen.set(c, cmdline(c));
            todo.push(c);
          }
        }
        await sleep(50);
      }
    })();
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let ms = 0;
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, opts.timeoutMs);
    // 'close' waits for the output to close too, which a process the command left behind could hold open
    let grace: NodeJS.Timeout | undefined;
    proc.on('exit', () => {
      ms = performance.now() - started;
      grace = setTimeout(() => {
        proc.stdout!.destroy();
        proc.stderr!.destroy();
      }, CLOSE_GRACE_MS);
    });
    proc.on('close', async (code, signal) => {
      clearTimeout(timer);
      clearTimeout(grace);
      live.delete(proc);
      running = false;
      await watching;
      resolve({ code, signal, stdout, stderr, ms, pid: proc.pid!, timedOut, seen });
    });
  });
}

/** Runs comet-bench (bench/cli.js); see runNode. */
export const bench = (args: string[], opts: RunOptions): Promise<Ran> => runNode(CLI, args, opts);
