/**
 * Renders the shared counters in the Prometheus text exposition format
 * (version 0.0.4), summed over threads except where a per-thread label is the
 * point (event-loop delay).
 */
import { ERROR_CODE_LIST } from '../protocol/errors.js';
import { errorSlot, type MetricsSnapshot, readMetrics, SLOT } from './counters.js';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * `sharedStore`: the engine is Redis (cluster mode), whose connection and subscription gauges are then shown.
 * `uwsVersion`: the uWebSockets.js build the threads run on.
 */
export function renderMetrics(buffer: SharedArrayBuffer, threads: number, sharedStore: boolean, uwsVersion: string): string {
  const snap = readMetrics(buffer, threads);
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels} ${value}`);
  };
  const sum = (slot: number) => total(snap, slot);

  metric('comet_build_info', 'gauge', 'The runtime: Node.js and uWebSockets.js versions (always 1).', [[`{node="${process.version}",uws="${uwsVersion}"}`, 1]]);
  metric('comet_threads', 'gauge', 'Worker threads serving HTTP and owning channels.', [['', threads]]);
  metric(
    'comet_waiting_gets',
    'gauge',
    'Gets in progress (waiting for a message or for their owner thread), event streams and WebSocket subscriptions: each holds one of --max-waiting.',
    [['', snap.waiting]],
  );
  metric(
    'comet_parked_gets',
    'gauge',
    "Gets registered with their channel's owner thread and waiting for a message: a put that arrives after they are counted here is answered to them.",
    [['', sum(SLOT.parkedGets)]],
  );
  metric('comet_open_files', 'gauge', "The process's open files, as the accept gate last counted them.", [['', snap.accept.openFiles]]);
  metric(
    'comet_max_connections',
    'gauge',
    'Open files at which the threads stop accepting connections (--max-connections, or derived from the open-file limit).',
    [['', snap.accept.ceiling]],
  );
  metric('comet_accepting', 'gauge', '1 while the threads accept connections on the public port, 0 while paused at --max-connections.', [
    ['', snap.accept.accepting ? 1 : 0],
  ]);
  metric('comet_accept_pauses_total', 'counter', 'Times the threads stopped accepting connections at --max-connections.', [['', snap.accept.pauses]]);
  if (!Number.isNaN(snap.connections)) {
    metric('comet_connections', 'gauge', 'Open client TCP connections, as last counted (see --connections-interval).', [['', snap.connections]]);
  }
  metric('comet_channels', 'gauge', 'Channels held in memory.', [['', sum(SLOT.channels)]]);
  metric('comet_stored_messages', 'gauge', 'Messages held in channel buffers.', [['', sum(SLOT.storedMessages)]]);
  metric('comet_stored_bytes', 'gauge', 'Bytes charged against --max-memory (messages and channels).', [['', sum(SLOT.storedBytes)]]);
  metric(
    'comet_watched_channels',
    'gauge',
    'Channels with gets waiting on them, counted once by their owner thread however many wait (at most --max-waiting); one never written is not a stored channel.',
    [['', sum(SLOT.watchedChannels)]],
  );
  if (sharedStore) {
    metric('comet_redis_subscriptions', 'gauge', 'Redis pub/sub subscriptions held by this node: one per channel with waiting gets, however many wait.', [
      ['', sum(SLOT.storeSubscriptions)],
    ]);
    metric('comet_redis_up', 'gauge', 'Threads whose Redis command connection is ready, out of comet_threads.', [['', sum(SLOT.storeUp)]]);
  }
  metric('comet_requests_total', 'counter', 'Valid protocol requests by method (WebSocket frames included: put, sync, subscribe).', [
    ['{method="put"}', sum(SLOT.requestsPut)],
    ['{method="get"}', sum(SLOT.requestsGet)],
    ['{method="sync"}', sum(SLOT.requestsSync)],
    ['{method="events"}', sum(SLOT.requestsEvents)],
    ['{method="subscribe"}', sum(SLOT.requestsSubscribe)],
  ]);
  metric('comet_streams', 'gauge', 'Streams open: event streams (method=events) and WebSocket subscriptions, each holding one of --max-waiting.', [
    ['', sum(SLOT.streams)],
  ]);
  metric('comet_websockets', 'gauge', 'WebSocket connections open.', [['', sum(SLOT.webSockets)]]);
  metric('comet_tokens_verified_total', 'counter', "Tokens whose signature was checked (--auth); those found in a thread's cache are not.", [
    ['', sum(SLOT.tokensVerified)],
  ]);
  metric('comet_tokens_remembered_total', 'counter', 'Requests whose token was found verified in the thread cache (--auth-cache-size).', [
    ['', sum(SLOT.tokensRemembered)],
  ]);
  metric('comet_messages_in_total', 'counter', 'Messages stored by put.', [['', sum(SLOT.messagesIn)]]);
  metric('comet_messages_out_total', 'counter', 'Messages sent in get answers and streams (one per message per get or stream).', [['', sum(SLOT.messagesOut)]]);
  metric('comet_bytes_in_total', 'counter', 'Message bytes stored by put (UTF-8).', [['', sum(SLOT.bytesIn)]]);
  metric('comet_bytes_out_total', 'counter', 'Body bytes of get answers, and message bytes sent on streams.', [['', sum(SLOT.bytesOut)]]);
  metric('comet_news_sent_total', 'counter', 'New-message notices sent by owner threads, one per thread with waiting gets on the channel (not one per get).', [
    ['', sum(SLOT.newsSent)],
  ]);
  metric('comet_unread_answers', 'gauge', 'Answers the socket did not take at once, written as their clients read.', [['', sum(SLOT.unreadAnswers)]]);
  metric('comet_unread_bytes', 'gauge', 'Bytes of those answers not yet taken by the socket.', [['', sum(SLOT.unreadBytes)]]);
  metric('comet_slow_readers_closed_total', 'counter', 'Connections closed because an answer left more than --max-connection-buffer unread.', [
    ['', sum(SLOT.slowReadersClosed)],
  ]);
  metric('comet_ip_connections_refused_total', 'counter', 'Connections closed as they opened: their address had --max-connections-per-ip open.', [
    ['', sum(SLOT.ipConnectionsRefused)],
  ]);
  metric(
    'comet_limit_untracked_total',
    'counter',
    'Requests and connections the per-client limits let through untracked: no entry of --limit-table-size was free for their address.',
    [['', sum(SLOT.limitUntracked)]],
  );
  metric(
    'comet_gc_seconds_total',
    'counter',
    'Seconds the threads (the main thread and every worker thread) were paused by garbage collection, summed: minor (scavenges) or major (mark-sweep-compact).',
    [
      ['{kind="minor"}', snap.mainGc.minor + sum(SLOT.gcMinorSeconds)],
      ['{kind="major"}', snap.mainGc.major + sum(SLOT.gcMajorSeconds)],
    ],
  );
  metric(
    'comet_errors_total',
    'counter',
    'Requests refused, by error code.',
    ERROR_CODE_LIST.map((code) => [`{code="${code}"}`, total(snap, errorSlot(code))]),
  );
  const delay: [string, number][] = [];
  const heap: [string, number][] = [];
  const young: [string, number][] = [];
  snap.threads.forEach((values, thread) => {
    heap.push([`{thread="${thread}"}`, values[SLOT.heapUsed]!]);
    young.push([`{thread="${thread}"}`, values[SLOT.youngGeneration]!]);
    delay.push([`{thread="${thread}",stat="p50"}`, values[SLOT.loopDelayP50]!]);
    delay.push([`{thread="${thread}",stat="p99"}`, values[SLOT.loopDelayP99]!]);
    delay.push([`{thread="${thread}",stat="max"}`, values[SLOT.loopDelayMax]!]);
  });
  metric('comet_event_loop_delay_seconds', 'gauge', 'Event-loop delay of each thread over the last second.', delay);
  metric('comet_heap_used_bytes', 'gauge', "Each thread's V8 heap in use, as of its last second's upkeep.", heap);
  metric('comet_heap_young_generation_bytes', 'gauge', "Each thread's V8 young generation as committed (bounded by --max-young-generation).", young);
  return out.join('\n') + '\n';
}

function total(snap: MetricsSnapshot, slot: number): number {
  let value = 0;
  for (const values of snap.threads) value += values[slot]!;
  return value;
}
