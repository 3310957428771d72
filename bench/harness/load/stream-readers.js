// The least of server-sent events and of WebSocket that a streaming
// subscriber needs on a raw socket (./longpoll-child.js): the request that
// opens the stream, and readers that cut a byte stream into events or frames.
// No http.Agent, no ws objects: 10,000 idle streams should cost the client
// little more than their sockets, and a fan-out to them little of its CPU.

import crypto from 'node:crypto';
import { formatRequest } from '../http1.js';

/**
 * @typedef {import('../types.js').Request} Request
 * @typedef {(status: number, line: string) => void} OnHead the response's status and first line
 */

/**
 * The GET that opens an event stream (an EventSource's request).
 * @param {Request} req
 * @param {string} hostHeader
 */
export const sseRequest = (req, hostHeader) => formatRequest({ ...req, headers: { ...req.headers, Accept: 'text/event-stream' } }, hostHeader);

// the server only hashes the key into its answer: one key serves every socket
const WS_KEY = crypto.randomBytes(16).toString('base64');

/**
 * The upgrade request that opens a WebSocket.
 * @param {string} path
 * @param {string} hostHeader
 */
export const wsUpgrade = (path, hostHeader) =>
  formatRequest({ path, headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': WS_KEY, 'Sec-WebSocket-Version': '13' } }, hostHeader);

export const OPCODE = { continuation: 0, text: 1, close: 8, ping: 9, pong: 10 };

/**
 * A client frame: a client must mask what it sends (RFC 6455, 5.3).
 * @param {number} opcode
 * @param {Buffer} payload
 */
export function maskedFrame(opcode, payload) {
  const len = payload.length;
  const extra = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const frame = Buffer.allocUnsafe(2 + extra + 4 + len);
  frame[0] = 0x80 | opcode;
  if (extra === 0) frame[1] = 0x80 | len;
  else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  const at = 2 + extra;
  crypto.randomFillSync(frame, at, 4);
  for (let i = 0; i < len; i++) frame[at + 4 + i] = payload[i] ^ frame[at + (i & 3)];
  return frame;
}

/**
 * Cuts the head of an HTTP response off text; null when it is not all there.
 * @param {string} text
 */
function cutHead(text) {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = text.slice(0, end);
  return { head, status: Number(head.slice(9, 12)), line: head.slice(0, head.indexOf('\r\n') >>> 0), rest: text.slice(end + 4) };
}

/**
 * An event stream's reader: the response head, then the body (chunked, or
 * as it comes until the connection closes) cut into events. Comments (the
 * opening line, heartbeats) are no events.
 */
export class SseReader {
  /** latin1 text not read yet */
  raw = '';
  /** body text not yet ended by a blank line */
  body = '';
  inHead = true;
  chunked = false;
  /** the line break that ends a chunk's data is still to come */
  afterChunk = false;

  /**
   * Reads a chunk; returns false once the body has ended (a last chunk).
   * @param {Buffer} chunk
   * @param {OnHead} onHead
   * @param {(event: string, data: string) => void} onEvent data decoded as UTF-8
   */
  read(chunk, onHead, onEvent) {
    this.raw += chunk.toString('latin1');
    if (this.inHead) {
      const h = cutHead(this.raw);
      if (h === null) return true;
      this.inHead = false;
      this.chunked = /\r\ntransfer-encoding:[^\r]*chunked/i.test(h.head);
      this.raw = h.rest;
      onHead(h.status, h.line);
    }
    let open = true;
    if (this.chunked) open = this.dechunk();
    else {
      this.body += this.raw;
      this.raw = '';
    }
    for (let end = this.body.indexOf('\n\n'); end >= 0; end = this.body.indexOf('\n\n')) {
      const block = this.body.slice(0, end);
      this.body = this.body.slice(end + 2);
      let event = 'message';
      /** @type {string[]} */
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
        else if (line.startsWith('event:')) event = line.slice(6).trim();
      }
      if (data.length > 0) onEvent(event, Buffer.from(data.join('\n'), 'latin1').toString('utf8'));
    }
    return open;
  }

  /**
   * Moves whole chunks' data from raw to body; false after the last chunk.
   * A chunk's data is read before the line break that ends it has come:
   * uWebSockets.js sends that line break with the next chunk, so waiting
   * for it would hold every event back until the next write (a heartbeat).
   */
  dechunk() {
    for (;;) {
      if (this.afterChunk) {
        if (this.raw.length < 2) return true;
        this.raw = this.raw.slice(2);
        this.afterChunk = false;
      }
      const lineEnd = this.raw.indexOf('\r\n');
      if (lineEnd < 0) return true;
      const size = parseInt(this.raw.slice(0, lineEnd), 16);
      if (!Number.isFinite(size)) throw new Error(`bad chunk size in an event stream: ${JSON.stringify(this.raw.slice(0, 40))}`);
      if (size === 0) return false;
      const end = lineEnd + 2 + size;
      if (this.raw.length < end) return true;
      this.body += this.raw.slice(lineEnd + 2, end);
      this.raw = this.raw.slice(end);
      this.afterChunk = true;
    }
  }
}

/** @type {Buffer} */
const EMPTY = Buffer.alloc(0);

/**
 * A WebSocket's reader: the upgrade's answer, then the server's frames
 * (unmasked), a fragmented message put together before it is handed on.
 */
export class WsReader {
  head = '';
  upgraded = false;
  /** @type {Buffer} */
  buf = EMPTY;
  /** @type {Buffer[]} */
  fragments = [];
  fragmentOpcode = 0;

  /**
   * @param {Buffer} chunk read only during the call: what is kept of it is copied
   * @param {OnHead} onHead
   * @param {(opcode: number, payload: Buffer) => void} onFrame control frames as they come, a data frame whole; payload valid during the call
   */
  read(chunk, onHead, onFrame) {
    if (!this.upgraded) {
      this.head += chunk.toString('latin1');
      const h = cutHead(this.head);
      if (h === null) return;
      this.upgraded = true;
      this.head = '';
      onHead(h.status, h.line);
      chunk = Buffer.from(h.rest, 'latin1');
    }
    let buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (buf.length >= 2) {
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      if (buf[1] & 0x80) throw new Error('a masked frame from the server');
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) break;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) break;
      const payload = buf.subarray(at, at + len);
      buf = buf.subarray(at + len);
      if (opcode >= OPCODE.close) onFrame(opcode, payload);
      else if (fin && this.fragments.length === 0) onFrame(opcode, payload);
      else {
        if (opcode !== OPCODE.continuation) this.fragmentOpcode = opcode;
        // the chunk may be a view on a buffer the socket reads into again (onread)
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = [];
          onFrame(this.fragmentOpcode, whole);
        }
      }
    }
    this.buf = buf.length ? Buffer.from(buf) : EMPTY;
  }
}
