// One keep-alive HTTP/1.1 connection on a raw socket, one request at a time:
// the harness's own publishes and probes. A request queued behind another
// waits for it, so answers never cross.

import net from 'node:net';
import { formatRequest, parseResponse } from './http1.js';

/**
 * @typedef {import('./types.js').Request} Request
 * @typedef {import('./types.js').Response} Response
 */

export class Connection {
  /** @param {{host: string, port: number, localAddress?: string, timeoutMs?: number}} opts */
  constructor({ host, port, localAddress, timeoutMs = 30_000 }) {
    this.host = host;
    this.port = port;
    this.localAddress = localAddress;
    this.timeoutMs = timeoutMs;
    /** @type {net.Socket | null} */
    this.socket = null;
    this.buffer = '';
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
    /** @type {{ resolve: (res: Response) => void, reject: (err: unknown) => void } | null} */
    this.waiter = null;
  }

  /**
   * Sends req and resolves its Response (reconnecting if the server closed the connection).
   * @param {Request} req
   * @returns {Promise<Response>}
   */
  request(req) {
    const run = () => this.#exchange(req);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  /** Closes the connection; a request waiting on it fails at once. */
  close() {
    const w = this.waiter;
    this.waiter = null;
    this.socket?.destroy();
    this.socket = null;
    w?.reject(new Error(`connection to ${this.host}:${this.port} closed by the harness`));
  }

  #connect() {
    if (this.socket && !this.socket.destroyed) return;
    this.buffer = '';
    const s = net.connect({ host: this.host, port: this.port, localAddress: this.localAddress });
    s.setNoDelay(true);
    s.on('data', (chunk) => {
      this.buffer += chunk.toString('latin1');
      this.#deliver();
    });
    /** @param {Error | null} err */
    const fail = (err) => {
      // a socket given up on (closed after a timeout) must not fail the request that replaced it
      if (this.socket !== s) return;
      this.socket = null;
      const w = this.waiter;
      this.waiter = null;
      w?.reject(err ?? new Error(`connection to ${this.host}:${this.port} closed before an answer`));
    };
    s.on('error', fail);
    s.on('close', () => fail(null));
    this.socket = s;
  }

  #deliver() {
    if (this.waiter === null) return;
    let parsed;
    try {
      parsed = parseResponse(this.buffer);
    } catch (err) {
      this.waiter.reject(err);
      this.waiter = null;
      return;
    }
    if (parsed === null) return;
    this.buffer = parsed.rest;
    const w = this.waiter;
    this.waiter = null;
    w.resolve(parsed.response);
  }

  /**
   * @param {Request} req
   * @returns {Promise<Response>}
   */
  #exchange(req) {
    this.#connect();
    const socket = /** @type {net.Socket} */ (this.socket);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.close();
        reject(new Error(`${req.method ?? 'GET'} ${req.path}: no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = {
        resolve: (res) => (clearTimeout(timer), resolve(res)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      socket.write(formatRequest(req, `${this.host}:${this.port}`));
    });
  }
}
