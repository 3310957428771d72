/**
 * A worker thread's once-a-second upkeep: the engine's sweep (eviction of
 * idle channels), and the gauges only a periodic look can give (event-loop
 * delay, what the engine holds, the thread's V8 heap); and, as they happen,
 * the thread's garbage-collection pauses.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import type { Engine } from '../engine/engine.js';
import { SLOT, type ThreadMetrics } from '../metrics/counters.js';
import { observeGc } from '../metrics/gc.js';

const INTERVAL_MS = 1000;
const LOOP_SAMPLE_MS = 10;

/** The histogram holds whole intervals between samples: the delay is what exceeds the sampling period. */
const delaySeconds = (nanos: number) => Math.max(0, nanos / 1e6 - LOOP_SAMPLE_MS) / 1000;

/** The young generation's spaces (new_space, new_large_object_space) as committed. */
function youngGenerationBytes(): number {
  let bytes = 0;
  for (const space of getHeapSpaceStatistics()) if (space.space_name.startsWith('new_')) bytes += space.space_size;
  return bytes;
}

/** Starts the upkeep; the function returned stops it. */
export function startHousekeeping(engine: Engine, metrics: ThreadMetrics): () => void {
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
  loopDelay.enable();
  const stopGc = observeGc((kind, seconds) => metrics.add(kind === 'minor' ? SLOT.gcMinorSeconds : SLOT.gcMajorSeconds, seconds));
  const timer = setInterval(() => {
    metrics.set(SLOT.loopDelayP50, delaySeconds(loopDelay.percentile(50)));
    metrics.set(SLOT.loopDelayP99, delaySeconds(loopDelay.percentile(99)));
    metrics.set(SLOT.loopDelayMax, delaySeconds(loopDelay.max));
    loopDelay.reset();
    engine.sweep();
    const stats = engine.stats();
    metrics.set(SLOT.channels, stats.channels);
    metrics.set(SLOT.storedMessages, stats.messages);
    metrics.set(SLOT.storedBytes, stats.bytes);
    metrics.set(SLOT.storeSubscriptions, stats.subscriptions);
    metrics.set(SLOT.storeUp, stats.up ? 1 : 0);
    // This thread's isolate: RSS is the process's, and a leak shows first in one thread's heap.
    metrics.set(SLOT.heapUsed, getHeapStatistics().used_heap_size);
    metrics.set(SLOT.youngGeneration, youngGenerationBytes());
  }, INTERVAL_MS);
  return () => {
    clearInterval(timer);
    loopDelay.disable();
    stopGc();
  };
}
