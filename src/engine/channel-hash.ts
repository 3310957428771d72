/**
 * The one hash of a channel name, shared by the thread sharding policy
 * (threads/router.ts) and the memory engine's table of evicted channels' last
 * times (engine/memory-engine.ts): FNV-1a over UTF-16
 * code units, stable across threads, processes and restarts.
 */
export function hashChannel(channel: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) {
    hash ^= channel.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
