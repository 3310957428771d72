/**
 * Clients of the streaming transports for the black-box tests, each over a
 * real socket: an event-stream reader on node:http with its own SSE parser
 * (so the tests see exactly what the server wrote: ids, event names,
 * comments), and a WebSocket client (the ws package) that matches answers
 * to requests by id.
 */
import http from 'node:http';
import WebSocket from 'ws';
import { type Endpoint, encodeQuery, type Params } from './http.js';
import { waitFor } from './wait.js';

export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

export class EventStreamClient {
  readonly events: SseEvent[] = [];
  /** Comment lines (`:...`) seen: the opening one and heartbeats. */
  comments = 0;
  /** Everything the body carried, as text. */
  text = '';
  /** The stream ended: `clean` when its body ended (the chunked end), not cut. */
  end: { clean: boolean } | undefined;
  private buffer = '';

  private constructor(
    readonly res: http.IncomingMessage,
    private readonly req: http.ClientRequest,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.text += chunk;
      this.buffer += chunk;
      this.parse();
    });
    res.on('end', () => (this.end ??= { clean: true }));
    res.on('aborted', () => (this.end ??= { clean: false }));
    res.on('error', () => (this.end ??= { clean: false }));
    res.on('close', () => (this.end ??= { clean: false }));
  }

  /** GET <path>?method=events&...; resolves with the response's head (a refusal's body is in `text` once it ended). */
  static open(ep: Endpoint, params: Params, headers: Record<string, string> = {}, path = '/'): Promise<EventStreamClient> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: ep.host, port: ep.port, path: `${path}?${encodeQuery({ method: 'events', ...params })}`, headers, agent: false }, (res) =>
        resolve(new EventStreamClient(res, req)),
      );
      req.on('error', reject);
      req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    });
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  /** The messages carried so far (each event's data, parsed). */
  get messages(): string[] {
    return this.events.filter((e) => e.event === undefined).map((e) => JSON.parse(e.data) as string);
  }

  waitEvents(n: number, timeoutMs = 5000): Promise<SseEvent[]> {
    return waitFor(() => (this.events.length >= n ? this.events : undefined), {
      timeoutMs,
      what: `${n} events (have ${this.events.length}: ${this.text.slice(-300)})`,
    });
  }

  waitEnd(timeoutMs = 5000): Promise<{ clean: boolean }> {
    return waitFor(() => this.end, { timeoutMs, what: 'the stream to end' });
  }

  /** The refusal's JSON body, once it ended. */
  async refusal(): Promise<{ error: string; code: string }> {
    await this.waitEnd();
    return JSON.parse(this.text) as { error: string; code: string };
  }

  close(): void {
    this.req.destroy();
  }

  private parse(): void {
    for (let at = this.buffer.indexOf('\n\n'); at !== -1; at = this.buffer.indexOf('\n\n')) {
      const block = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 2);
      const event: SseEvent = { id: undefined, event: undefined, data: '' };
      let fields = 0;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments++;
          continue;
        }
        const colon = line.indexOf(':');
        const name = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        fields++;
        if (name === 'id') event.id = value;
        else if (name === 'event') event.event = value;
        else if (name === 'data') event.data = event.data === '' ? value : `${event.data}\n${value}`;
        else throw new Error(`unexpected SSE field ${JSON.stringify(line)}`);
      }
      if (fields > 0) this.events.push(event);
    }
  }
}

export interface Delivery {
  channel: string;
  time: number;
  messages: string[];
  missed?: boolean;
}

type Answer = { id: unknown; time?: number; error?: string; code?: string };

export class SocketClient {
  readonly deliveries: Delivery[] = [];
  /** Every frame received, parsed, in order. */
  readonly frames: Array<Record<string, unknown>> = [];
  closed: { code: number; reason: string } | undefined;
  private nextId = 1;
  private readonly answers = new Map<unknown, (answer: Answer) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      this.frames.push(frame);
      if ('channel' in frame && !('id' in frame)) this.deliveries.push(frame as unknown as Delivery);
      else {
        const waiting = this.answers.get(frame.id);
        this.answers.delete(frame.id);
        waiting?.(frame as Answer);
      }
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static open(ep: Endpoint, options: { path?: string; headers?: Record<string, string>; query?: string } = {}): Promise<SocketClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${ep.host}:${ep.port}${options.path ?? '/'}${options.query ? `?${options.query}` : ''}`, { headers: options.headers });
      ws.once('open', () => resolve(new SocketClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade answered ${res.statusCode}`), { status: res.statusCode })));
    });
  }

  /** Sends a request frame (an id is added when it has none) and resolves with its answer. */
  request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Answer> {
    const id = 'id' in frame ? frame.id : this.nextId++;
    const answered = new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(frame)} within ${timeoutMs} ms`)), timeoutMs);
      this.answers.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
    this.ws.send(JSON.stringify({ id, ...frame }));
    return answered;
  }

  /** Sends raw text, for frames that are not requests. */
  sendRaw(text: string | Buffer, binary = false): void {
    this.ws.send(text, { binary });
  }

  /** The messages delivered on `channel` so far, in order. */
  messages(channel: string): string[] {
    return this.deliveries.filter((d) => d.channel === channel).flatMap((d) => d.messages);
  }

  waitMessages(channel: string, n: number, timeoutMs = 5000): Promise<string[]> {
    return waitFor(() => (this.messages(channel).length >= n ? this.messages(channel) : undefined), {
      timeoutMs,
      what: `${n} messages on ${channel} (have ${this.messages(channel).length})`,
    });
  }

  waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, { timeoutMs, what: 'the WebSocket to close' });
  }

  close(): void {
    this.ws.terminate();
  }
}
