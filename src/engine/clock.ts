/**
 * Message times: microseconds since the epoch, bumped by one where needed so
 * that they strictly increase per channel.
 *
 * The clock is the wall clock as read when the process started, carried on by
 * the monotonic clock (performance.timeOrigin + performance.now()). Anchored to
 * the wall clock, it is shared with a restarted server's previous life: times
 * keep increasing across a restart without any storage. It has microsecond
 * resolution, and every thread of the process reads the same value at the
 * same instant (to within microseconds): a get without a time is stamped with
 * it where it arrives, and its channel's owner thread answers it with the
 * messages whose time is not below that stamp, however long the get took to
 * reach the owner (engine.ts). A time is never below the channel's last time
 * plus one, so no step of any clock reorders a channel. 2^53 microseconds is
 * the year 2255.
 *
 * `performance` is imported, not the global: the global is a lazy getter that
 * cost a slow global load and a getter call per put (perf).
 */
import { performance } from 'node:perf_hooks';

/** This thread's origin (each thread loads its own copy of this module): the wall clock when it started, in ms. */
const ORIGIN = performance.timeOrigin;

export function nowMicros(): number {
  return Math.floor((ORIGIN + performance.now()) * 1000);
}

/** The time for a new message on a channel whose current time is `current`; `now` is nowMicros(). */
export function nextTime(current: number, now = nowMicros()): number {
  return now > current ? now : current + 1;
}
