/**
 * Channel to thread routing: every channel has exactly one owner thread, the
 * only one that stores its messages and assigns its times.
 */
import { hashChannel } from '../engine/channel-hash.js';

export function ownerOf(channel: string, threads: number): number {
  return threads === 1 ? 0 : hashChannel(channel) % threads;
}
