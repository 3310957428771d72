/**
 * The comet_connections gauge. uWebSockets.js tells JavaScript nothing about
 * connections that open and close, so they are counted from /proc/self/fd:
 * about 5 µs per open file, some 100 ms at 18,000 connections. The main
 * thread, which serves no requests, counts every few seconds into the shared
 * metrics buffer, so that neither a /metrics scrape nor any worker's event
 * loop pays for it. Synchronous calls: the cheapest per file, and only the
 * main thread waits for them.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { setConnections } from './counters.js';

/** TCP sockets of this process minus the listeners (one per thread); NaN where /proc is absent. */
export function countConnections(listeners: number): number {
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return NaN;
  }
  let sockets = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) sockets++;
    } catch {
      // The descriptor closed while we listed them.
    }
  }
  return Math.max(0, sockets - listeners);
}

/** Counts now and then every intervalS seconds until the returned stop() (intervalS 0: never). */
export function startConnectionCounter(buffer: SharedArrayBuffer, listeners: number, intervalS: number): () => void {
  if (intervalS <= 0) return () => {};
  const tick = () => setConnections(buffer, countConnections(listeners));
  tick();
  const timer = setInterval(tick, intervalS * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
