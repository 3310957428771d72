// The harness's two contracts with the outside, as types: the adapter a user
// writes to speak to their server (--adapter, the ./bench/adapters export),
// and the results file comet-bench writes (--json) and renders (--from-json,
// --merge). bench/README.md describes both in prose; the harness's modules
// (through JSDoc `import('./types.js')`), user adapters and the tests
// (test/helpers/bench.ts, test/unit/bench-*.test.ts) use these.

/** A request the harness sends: GET unless method says otherwise. */
export interface Request {
  method?: string;
  /** The path and query string. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** An answer as the harness reads it: header names lower-case, the body decoded as UTF-8. */
export interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Where an answer leaves the channel, for the next get; opaque to the harness. */
export type Cursor = unknown;

export interface GetResult {
  ok: boolean;
  messages: string[];
  /** null: the answer says nothing about where to read on (wait for the next message). */
  cursor: Cursor | null;
  /** An answer without messages at the end of the server's wait: the get is asked again. */
  timedOut: boolean;
}

/** How the harness speaks to a server (bench/README.md, "Adapters"). */
export interface Adapter {
  /** Publishes one message. */
  put(channel: string, message: string): Request;
  /** The channel's current position (the sync case). */
  sync(channel: string): Request;
  /** A long-poll; cursor null waits for the next message. */
  get(channel: string, cursor: Cursor | null): Request;
  /** A get the server answers at once from its buffer; call(req) sends the setup requests. */
  buffered(channel: string, call: (req: Request) => Promise<Response>): Promise<Request>;
  readPut(res: Response): { ok: boolean };
  readGet(res: Response): GetResult;
  /** Where the server counts waiting gets; without it the harness waits a fixed grace. */
  waiting?: { path: string; read(body: string): number };
  /** The streaming subscribers (the streams scenario); without it only long-polls are measured. */
  streams?: StreamAdapter;
}

/** What a streaming subscriber reads of one WebSocket text frame from the server. */
export type FrameResult = { messages: string[] } | { subscribed: true } | { refused: string };

/** How a streaming subscriber speaks to a server: server-sent events and WebSocket. */
export interface StreamAdapter {
  /** The GET that opens an event stream on a channel (the client adds `Accept: text/event-stream`). */
  sse(channel: string): Request;
  /** The message an event's `data` carries. */
  sseMessage(data: string): string;
  /** The WebSocket upgrade's path, and the frame that subscribes it to the channel (null: the path alone does). */
  ws(channel: string): { path: string; subscribe: string | null };
  /** A text frame from the server: messages delivered, the subscription's answer, or a refusal. */
  wsFrame(text: string): FrameResult;
  /** Where the server counts its open streams (both transports); without it the harness trusts the clients' own readiness. */
  waiting?: { path: string; read(body: string): number };
}

/** An adapter module's default export. */
export type AdapterFactory = (url: URL) => Adapter;

/** Which side ran out of CPU in a run (90 % of its cores). */
export type Bound = 'server' | 'load' | 'both' | 'neither';

/** One run's figures, as the scenario has them (bench/README.md, "Results"). */
export interface Run {
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** Per request or per delivery; Redis's CPU included for targets with Redis. */
  serverCpuUs?: number;
  /** Fan-out over long-polls: the target's CPU per delivery from asking again until every get waits again (Redis's included where serverCpuUs has it). */
  rearmCpuUs?: number;
  /** Fan-out: serverCpuUs plus rearmCpuUs, the CPU per delivery until the subscriber can take the next message (a stream's is its serverCpuUs). */
  cycleCpuUs?: number;
  /** The subscriber client processes' CPU per delivery (fan-out). */
  clientCpuUs?: number;
  serverCores?: number;
  loadCores?: number;
  bound?: Bound;
  deliveriesPerSec?: number;
  bytesPerWaiter?: number;
  bytesPerWaiterPss?: number;
  delivered?: number;
  expected?: number;
  redisCpuUs?: number;
  redisCores?: number;
  /** GC pause ms of the target per 1,000 requests; null for a target that does not count its GC (Nchan). */
  gcMsPer1k?: number | null;
  [figure: string]: number | string | null | undefined;
}

/** A row: one (scenario, case or waiter count, threads, target) and its runs. */
export interface Entry {
  scenario: string;
  target: string;
  case?: string;
  waiters?: number;
  threads?: number;
  /** The cores the target and the load ran on. */
  pin?: { server: string; load: string } | null;
  /** Which of meta.merges brought the row in (--merge). */
  merge?: number;
  runs: Run[];
}

/** A target as the results file lists it. */
export interface TargetInfo {
  id: string;
  kind: 'comet' | 'ceiling' | 'nchan' | 'redis' | 'cluster' | 'external';
  label: string;
  threads: number | null;
  nodes?: number;
}

export interface Failure {
  what: string;
  message: string;
  merge?: number;
}

/** The results file: bench/results/latest.json, BENCHMARKS-results.json. */
export interface Results {
  /** The machine, versions, settings, pinning and load average; a merged file also `merges`. */
  meta: Record<string, any>;
  targets: TargetInfo[];
  entries: Entry[];
  failures: Failure[];
}
