/**
 * Garbage-collection pause time of the calling thread, as V8 reports each
 * collection to perf_hooks (the figures --trace-gc prints). The observer is
 * called once per collection, never per request; Node batches its entries.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';

/** minor: scavenges of the young generation; major: mark-sweep-compact, with its incremental marking steps and weak-callback processing. */
export type GcKind = 'minor' | 'major';

/** Calls `pause(kind, seconds)` for each collection of this thread from now on; the function returned stops. */
export function observeGc(pause: (kind: GcKind, seconds: number) => void): () => void {
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      pause(kind === constants.NODE_PERFORMANCE_GC_MINOR ? 'minor' : 'major', entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
