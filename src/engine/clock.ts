/**
 * Message times: wall-clock microseconds since the epoch, bumped by one where
 * needed so that they strictly increase per channel.
 *
 * The wall clock itself (not the monotonic clock) is the reference, because it
 * is the only one a restarted server shares with its previous life: times
 * keep increasing across a restart without any storage. A wall-clock step
 * backwards while running cannot reorder a channel either, since a time is
 * never below the channel's last time plus one. Date.now() has millisecond
 * resolution; puts within one millisecond on a channel are numbered by the
 * bump. 2^53 microseconds is the year 2255.
 */
export function nowMicros(): number {
  return Date.now() * 1000;
}

/** The time for a new message on a channel whose current time is `current`; `nowMs` is Date.now() (one call per put, not two). */
export function nextTime(current: number, nowMs = Date.now()): number {
  const now = nowMs * 1000;
  return now > current ? now : current + 1;
}
