/**
 * Channel to thread routing: every channel has exactly one owner thread, the
 * only one that stores its messages and assigns its times. The hash is FNV-1a
 * over UTF-16 code units: stable across threads, processes and restarts.
 */
export function hashChannel(channel: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) {
    hash ^= channel.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function ownerOf(channel: string, threads: number): number {
  return threads === 1 ? 0 : hashChannel(channel) % threads;
}
