/**
 * Server-sent events read with fetch and a parser of our own rather than
 * EventSource: Node.js 20 has no EventSource, and EventSource cannot send
 * `Authorization: Bearer`, nor tell a refusal (4xx) from a dropped stream,
 * nor report a silent one. The stream is read chunk by chunk; the messages a
 * chunk completes are one batch.
 */
import { CometNetworkError, errorFromAnswer, networkError } from './errors.js';
import { anySignal, failure, type Params, protocolFetch, watchdog } from './transport.js';

/** One event of the stream, as the SSE format defines it (only the fields the protocol uses). */
export interface StreamEvent {
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * The SSE line format (WHATWG HTML, "Parsing an event stream"): lines end in
 * CRLF, LF or CR; `field: value` lines build an event that a blank line
 * dispatches; lines starting with `:` are comments. Fed text as it arrives,
 * it keeps an incomplete line, and an undispatched event, for the next chunk.
 */
export class EventParser {
  private rest = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  /** A chunk that ended on CR: an LF starting the next one belongs to that line end. */
  private afterCr = false;

  /** The events that `text` completes. */
  feed(text: string): StreamEvent[] {
    const out: StreamEvent[] = [];
    let input = this.rest + text;
    if (this.afterCr && input.startsWith('\n')) input = input.slice(1);
    this.afterCr = false;
    const ends = /\r\n|\r|\n/g;
    let start = 0;
    for (let end = ends.exec(input); end !== null; end = ends.exec(input)) {
      this.line(input.slice(start, end.index), out);
      start = end.index + end[0].length;
      if (end[0] === '\r' && start === input.length) this.afterCr = true;
    }
    this.rest = input.slice(start);
    return out;
  }

  private line(line: string, out: StreamEvent[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

/** What one chunk of the stream brought: its messages, the last one's time, and whether a `missed` event came. */
export interface EventBatch {
  messages: string[];
  time: number | undefined;
  missed: boolean;
}

/**
 * Opens the stream from `time` and calls `onBatch` for each chunk that
 * completed an event, until the stream fails: it never returns normally,
 * rejecting with a CometRequestError or CometServerError when the server
 * refused it, a CometNetworkError when it dropped or stayed silent for
 * `silenceMs`, or the signal's reason once the signal fired. `opened` is
 * called once the server accepted the stream.
 */
export async function readEventStream(
  url: string,
  params: Params,
  token: string | undefined,
  { signal, silenceMs, opened, onBatch }: { signal: AbortSignal; silenceMs: number; opened: () => void; onBatch: (batch: EventBatch) => void },
): Promise<never> {
  // Armed from the request on: a server that accepts the connection and then says nothing is as dead as one that stops.
  const silence = watchdog(silenceMs, () => networkError(`the event stream was silent for ${silenceMs} ms`, 'COMET_CLIENT_TIMEOUT'));
  const [both, release] = anySignal([signal, silence.signal]);
  let reader: ReadableStreamDefaultReader<string> | undefined;
  try {
    const res = await protocolFetch(url, params, { post: false, signal: both, token, accept: 'text/event-stream' });
    if (!res.ok || res.body === null) {
      const body: unknown = await res.json().catch((err: unknown) => {
        if (both.aborted) throw failure(err, both);
        return undefined;
      });
      throw errorFromAnswer(res.status, body);
    }
    if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      await res.body.cancel().catch(() => undefined);
      throw networkError(`the answer (HTTP ${res.status}) is not an event stream: ${res.headers.get('content-type')}`);
    }
    opened();
    reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventParser();
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw failure(err, both);
      }
      if (chunk.done) throw new CometNetworkError('the server ended the event stream', 'COMET_CLIENT_NETWORK', 0, true);
      silence.reset();
      const batch: EventBatch = { messages: [], time: undefined, missed: false };
      for (const event of parser.feed(chunk.value)) {
        if (event.event === 'missed') batch.missed = true;
        else if (event.event === 'message' && event.id !== undefined) {
          batch.messages.push(JSON.parse(event.data) as string);
          batch.time = Number(event.id);
        }
      }
      if (batch.messages.length > 0 || batch.missed) onBatch(batch);
    }
  } finally {
    // Left by a throw (an event that is not JSON, or onBatch's), the body is not aborted: cancelling it closes its connection.
    reader?.cancel().catch(() => undefined);
    silence.clear();
    release();
  }
}
