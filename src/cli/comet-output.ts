/**
 * What `comet` prints: a subscription's batches as plain lines or JSON lines,
 * and errors as one line a person can act on. Pure functions, so that the
 * formats are decided in one place.
 */
import { CometClientError, CometNetworkError, CometRequestError, type BatchInfo } from '../client/index.js';

/**
 * One answer's messages as stdout text, written in one piece so that output
 * always ends on an answer's boundary (the last line's time is then a safe
 * place to resume from).
 */
export function formatBatch(channel: string, messages: readonly string[], info: BatchInfo, json: boolean): string {
  if (!json) return messages.map((m) => `${m}\n`).join('');
  const missed = info.missed ? { missed: true } : {};
  // A gap with nothing left to deliver is still worth a line: the consumer must know.
  if (messages.length === 0) return `${JSON.stringify({ channel, time: info.time, ...missed })}\n`;
  return messages.map((message, i) => `${JSON.stringify({ channel, time: info.time, message, ...(i === 0 ? missed : {}) })}\n`).join('');
}

/** The stderr note for a gap in plain mode, where stdout carries nothing but messages. */
export function missedNote(channel: string): string {
  return `comet: ${JSON.stringify(channel)}: some messages were lost before the ones that follow (the server no longer held them)\n`;
}

/** One line for a failed request: what the server said, or why there was no answer. */
export function describeError(err: unknown, url: string): string {
  if (err instanceof CometRequestError) {
    // The one refusal that a flag of this tool can fix.
    const hint = err.status === 401 ? '; give a token with --token or COMET_TOKEN (comet token mints one)' : '';
    return `the server refused the request: ${err.message} (HTTP ${err.status}, ${err.code})${hint}`;
  }
  if (err instanceof CometNetworkError) return `no answer from ${url}: ${err.message}`;
  if (err instanceof CometClientError) return `the server could not serve the request: ${err.message} (HTTP ${err.status}, ${err.code})`;
  return (err as Error)?.stack ?? String(err);
}
