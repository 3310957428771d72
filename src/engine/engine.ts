import type { Buffer } from 'node:buffer';

/**
 * The channel store, as seen by the thread that owns a channel.
 *
 * Contract (every implementation, in memory or on Redis):
 * - Operations on one channel take effect atomically and in the order they
 *   were called; the returned promises resolve in that order.
 * - append() resolves only once the message is stored, with a time strictly
 *   greater than every earlier time of the channel, across restarts and nodes.
 * - currentTime(c) = T such that every stored message has time <= T and every
 *   later append gets a time > T.
 * - read(c, since) returns the messages with time > since, oldest first,
 *   capped by count and bytes (at least one message when any is newer), and
 *   `missed` when messages newer than `since` may have existed but are no
 *   longer held (dropped from a full buffer, evicted with an idle channel, or
 *   older than what this store has known since it started).
 * - After watch(c) resolves, every message appended to c is passed to the
 *   listener, in time order, until unwatch(c), or, where messages were lost
 *   meanwhile, the gap is reported. A watched channel is never evicted from
 *   memory; in a shared store (Redis) its keys still expire after the channel
 *   TTL without a write, as every channel's do.
 * - Only append stores a channel: read, currentTime and watch of a channel
 *   never written (or expired) store nothing, and what watch keeps for it (a
 *   name, a subscription) goes with unwatch, so that gets on many distinct
 *   names cost nothing once they are answered.
 *
 * Message bodies are stored already JSON-encoded (script-safe), so a fan-out
 * serialises each message exactly once, and a read gives them as the bytes
 * an answer carries between the brackets of its "messages".
 *
 * Results are `Eventually<T>`: an engine that completes an operation at once
 * (the in-memory one) returns the value itself, sparing the hot path a
 * promise and a microtask per request; one that must wait (Redis) returns a
 * promise. Callers handle both; promises of one channel resolve in call order.
 * A promise that fails rejects with a StoreFailure.
 */
export type Eventually<T> = T | Promise<T>;

/**
 * Why the store could not carry out an operation, as a value: the engines
 * know nothing of HTTP, and the owner of the channel (threads/owner.ts) turns
 * the kind into the answer's code.
 * - `unavailable`: cannot be reached, or not keeping up, for now; retrying later may work.
 * - `refused`: the store answered the operation with an error that retrying will not cure.
 * - `closed`: the engine was closed (the server is stopping).
 */
export type StoreFailureKind = 'unavailable' | 'refused' | 'closed';

export class StoreFailure extends Error {
  constructor(
    readonly kind: StoreFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'StoreFailure';
  }
}

export interface ReadLimits {
  maxMessages: number;
  maxBytes: number;
}

export interface ReadResult {
  /** Time of the last message returned, or the channel's current time (never below `since`) when none is. */
  time: number;
  /** Messages returned. */
  count: number;
  /**
   * Their JSON texts, oldest first, as UTF-8 separated by commas (`m1,m2`):
   * what an answer holds between the brackets of "messages", spliced in as it
   * is. In memory, a view of the engine's own storage, valid only until the
   * engine is next called: whoever keeps it longer copies it.
   */
  json: Buffer;
  missed: boolean;
}

export type MessageListener = (channel: string, time: number, body: string) => void;
/**
 * Messages of a watched channel may have been lost while the engine could not
 * listen (a shared store restarted without its data): whoever waits on the
 * channel should read again from its own cursor, which reports `missed`.
 */
export type GapListener = (channel: string) => void;

export interface EngineStats {
  /** Channels, messages and bytes held in this thread's memory (0 for Redis, which keeps them). */
  channels: number;
  messages: number;
  bytes: number;
  /** Pub/sub subscriptions this thread holds at a shared store (0 in memory). */
  subscriptions: number;
  /** Whether the store can be reached (always true in memory). */
  up: boolean;
}

export interface Engine {
  /** Whether append() gives its time at once (a number, never a Promise). */
  readonly appendsAtOnce: boolean;
  /** Stores a JSON-encoded message; gives its time. */
  append(channel: string, body: string): Eventually<number>;
  currentTime(channel: string): Eventually<number>;
  /**
   * `since` below 0 means "no cursor" (a get without `time`): -since is when
   * the get arrived (nowMicros() on the thread that took it). In memory, the
   * answer holds the messages whose time is not below it, those put after the
   * get arrived even if they reached the owner thread first, and the current
   * time when there are none; Redis answers with the current time as its read
   * finds it. `times`, when given (a stream's read: each message is an event
   * with its own time), gets the time of each message returned, in order.
   */
  read(channel: string, since: number, limits: ReadLimits, times?: number[]): Eventually<ReadResult>;
  watch(channel: string): Eventually<void>;
  unwatch(channel: string): void;
  setListener(onMessage: MessageListener, onGap?: GapListener): void;
  /** Periodic upkeep (eviction of idle channels), called about once a second. */
  sweep(nowMs?: number): void;
  stats(): EngineStats;
  close(): Promise<void>;
}
