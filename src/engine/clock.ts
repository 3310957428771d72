/**
 * Message times: wall-clock microseconds since the epoch, bumped by one where
 * needed so that they strictly increase per channel. Being anchored to the wall
 * clock, times keep increasing across a restart without any storage; being read
 * from the monotonic clock within a process, a wall-clock step backwards while
 * running cannot reorder them. 2^53 microseconds is the year 2255.
 */
import { performance } from 'node:perf_hooks';

export function nowMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

/** The time for a new message on a channel whose current time is `current`. */
export function nextTime(current: number): number {
  const now = nowMicros();
  return now > current ? now : current + 1;
}
