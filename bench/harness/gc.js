// Garbage collection in the target over a measured window: the target's own
// count of GC pause seconds (comet_gc_seconds_total in its /metrics: the
// comet-N targets, the ceiling) read before and after, as milliseconds per
// 1,000 requests. A target that does not count them (Nchan: no GC; an
// external server without the metric) has no figure: null, never 0.

import { promSum } from './adapters.js';

export const GC_METRIC = 'comet_gc_seconds_total';

/**
 * The GC pause seconds a /metrics page counts, or null when it has no such counter.
 * @param {{ status: number, body: string }} res
 */
export function gcSecondsOf(res) {
  const s = res.status === 200 ? promSum(res.body, GC_METRIC) : NaN;
  return Number.isFinite(s) ? s : null;
}

/**
 * GC milliseconds per 1,000 requests between two readings of a target's GC
 * seconds; null when either reading is missing or no request was answered.
 * @param {number | null} before
 * @param {number | null} after
 * @param {number} requests
 * @returns {number | null}
 */
export function gcMsPer1k(before, after, requests) {
  if (before === null || after === null || !(requests > 0)) return null;
  return (Math.max(0, after - before) * 1e6) / requests;
}
