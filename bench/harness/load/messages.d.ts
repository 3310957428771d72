// What the load generators' child processes and their parents say to each
// other over IPC (the files named describe what each message means).

import type { HistogramJSON } from '../histogram.js';
import type { Request } from '../types.js';

/** Every child may report a failure instead of the message awaited. */
export interface Fatal {
  type: 'fatal';
  message: string;
}

// ./autocannon-load.js <-> ./autocannon-child.js

export interface AutocannonTarget {
  url: string;
  connections: number;
  /** Where in requests the instance starts its rotation. */
  offset: number;
}

export type AutocannonCommand = { cmd: 'run'; targets: AutocannonTarget[]; requests: Request[]; warmupS: number; durationS: number } | { cmd: 'go' };

export type AutocannonReport =
  | { type: 'warm' }
  | { type: 'done'; requests: number; errors: number; non2xx: number; timeouts: number; durationS: number; histogram: HistogramJSON }
  | Fatal;

// ./longpoll-clients.js <-> ./longpoll-child.js

/** How a subscriber client waits for messages: chained long-polls, an event stream, or a WebSocket. */
export type Transport = 'longpoll' | 'sse' | 'ws';

export interface OpenCommand {
  cmd: 'open';
  urls: string[];
  adapterRef: string;
  transport: Transport;
  count: number;
  firstIndex: number;
  channel: string;
  ownChannels: boolean;
  localAddresses: string[];
  concurrency: number;
  rate: number;
}

export type LongPollCommand = OpenCommand | { cmd: 'arm'; expect: string } | { cmd: 'ask' } | { cmd: 'close' };

/** An answer that was not a delivery: its status and the start of its body. */
export interface BadAnswer {
  status: number;
  body: string;
}

export interface Delivered {
  type: 'delivered';
  ok: number;
  bad: number;
  closed: number;
  firstBad: BadAnswer | null;
  /** Monotonic clock (ms, process.hrtime) of each good answer. */
  arrivals: number[];
}

export type LongPollReport =
  | { type: 'ready' }
  | { type: 'opened'; count: number; failed: number; firstError: string | null }
  | ({ type: 'early'; index: number } & BadAnswer)
  | { type: 'armed' }
  | { type: 'asked' }
  | Delivered
  | Fatal;
