/**
 * Keeps the process below its open-file limit. Past the limit accept()
 * fails with EMFILE, the listen socket stays readable, and uSockets' loop
 * retries it at once: every thread spins at full CPU and accepts nothing,
 * /healthz included, for as long as the limit is hit. uWebSockets.js tells
 * JavaScript nothing about connections, so the main thread (which serves no
 * requests) counts the open files, looking more often the nearer the
 * ceiling, and tells every thread to close its public listen socket at the
 * ceiling (new connections are then refused by the kernel, at no cost to
 * the threads) and to listen again once the count fell below 90% of it.
 * The admin listener stays open throughout: the margin under the limit is
 * what lets it and Redis still open files.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { Config } from '../config/options.js';
import type { Logger } from '../log.js';
import { setAcceptState } from '../metrics/counters.js';

/** Files kept free below 90% of the limit for logs, Redis connections and the admin listener. */
const RESERVED_FILES = 32;
const RESUME_FRACTION = 0.9;
/** Looks this often when far from the ceiling, and at most this often near it or past it. */
const SLOW_LOOK_MS = 1000;
const FAST_LOOK_MS = 100;

export interface OpenFileLimit {
  soft: number;
  hard: number;
}

/** RLIMIT_NOFILE as /proc reports it (Node.js raised the soft limit to the hard one at start); undefined without /proc. */
export function openFileLimit(): OpenFileLimit | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = (line ?? '').split(/\s+/).slice(3, 5);
    const parse = (v: string | undefined) => (v === 'unlimited' ? Infinity : Number(v));
    const limit = { soft: parse(soft), hard: parse(hard) };
    return Number.isNaN(limit.soft) || Number.isNaN(limit.hard) ? undefined : limit;
  } catch {
    return undefined;
  }
}

/** The open files at which accepting stops: --max-connections, or derived from the soft limit; Infinity when neither is known. */
export function connectionCeiling(maxConnections: number, limit: OpenFileLimit | undefined): number {
  if (maxConnections > 0) return maxConnections;
  if (limit === undefined || !Number.isFinite(limit.soft)) return Infinity;
  return Math.max(1, Math.floor(limit.soft * RESUME_FRACTION) - RESERVED_FILES);
}

/**
 * The process's open files; Infinity when none is left to list them with
 * (before Linux 6.2, counting reads the directory, which takes a file: a
 * burst of connections got past the last look), NaN without /proc.
 */
function openFiles(): number {
  try {
    // Linux 6.2 and later give the count as the directory's size, allocating nothing: a listing near the
    // ceiling made 10 arrays of 10,000 strings a second, and grew this thread's young generation by megabytes.
    const { size } = statSync('/proc/self/fd');
    return size > 0 ? size : readdirSync('/proc/self/fd').length;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EMFILE' || code === 'ENFILE' ? Infinity : NaN;
  }
}

/**
 * Starts looking; returns stop(). `accepting(on)` tells every thread. Does
 * nothing where /proc is missing (the count cannot be taken).
 */
export function startAcceptGate(config: Config, metrics: SharedArrayBuffer, accepting: (on: boolean) => void, log: Logger): () => void {
  if (Number.isNaN(openFiles())) return () => {};
  let open = true;
  let pauses = 0;
  let timer: NodeJS.Timeout;
  let ceiling = connectionCeiling(config.maxConnections, openFileLimit());
  const look = () => {
    const files = openFiles();
    // The limit can change while running (prlimit). At the limit it is unreadable (reading takes a file): the last one stands.
    const limit = openFileLimit();
    if (limit !== undefined) ceiling = connectionCeiling(config.maxConnections, limit);
    if (open && files >= ceiling) {
      open = false;
      pauses++;
      log.warn({ openFiles: files, maxConnections: ceiling }, 'at --max-connections: not accepting connections until some close');
      accepting(false);
    } else if (!open && files < ceiling * RESUME_FRACTION) {
      open = true;
      log.info({ openFiles: files, maxConnections: ceiling }, 'accepting connections again');
      accepting(true);
    }
    setAcceptState(metrics, { accepting: open, openFiles: Number.isFinite(files) ? files : NaN, ceiling: Number.isFinite(ceiling) ? ceiling : 0, pauses });
    // Far from the ceiling a look a second is enough: it would take thousands of connections a second to reach it unseen.
    const near = !open || files >= ceiling * 0.25;
    timer = setTimeout(look, near ? FAST_LOOK_MS : SLOW_LOOK_MS);
    timer.unref();
  };
  look();
  return () => clearTimeout(timer);
}
