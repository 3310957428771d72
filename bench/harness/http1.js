// The least HTTP/1.1 a load generator needs on raw sockets: write a request,
// cut complete responses out of a byte stream (Content-Length, chunked, or
// no body for 204/304), and keep the connection for the next request. No
// http.Agent and no parser objects per request, so that 18,000 idle long-polls
// cost the client little more than their sockets.

/**
 * @typedef {import('./types.js').Request} Request
 * @typedef {import('./types.js').Response} Response
 */

/**
 * Serialises a request for host:port (keep-alive is HTTP/1.1's default).
 * @param {Request} req
 * @param {string} hostHeader
 */
export function formatRequest(req, hostHeader) {
  const method = req.method ?? 'GET';
  let head = `${method} ${req.path} HTTP/1.1\r\nHost: ${hostHeader}\r\n`;
  if (req.headers) for (const k in req.headers) head += `${k}: ${req.headers[k]}\r\n`;
  if (req.body !== undefined) {
    return `${head}Content-Length: ${Buffer.byteLength(req.body)}\r\n\r\n${req.body}`;
  }
  return method === 'GET' || method === 'HEAD' ? `${head}\r\n` : `${head}Content-Length: 0\r\n\r\n`;
}

/**
 * Cuts the first complete response out of text (latin1-decoded bytes).
 * Returns { response, rest } or null when more bytes are needed. Bodies are
 * decoded as UTF-8.
 * @param {string} text
 * @returns {{ response: Response, rest: string } | null}
 */
export function parseResponse(text) {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = text.slice(0, headEnd).split('\r\n');
  const status = Number(lines[0].slice(9, 12));
  /** @type {Record<string,string>} */
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':');
    if (colon > 0) headers[lines[i].slice(0, colon).toLowerCase()] = lines[i].slice(colon + 1).trim();
  }
  const start = headEnd + 4;
  let bodyRaw;
  let end;
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    bodyRaw = '';
    end = start;
  } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
    const chunked = parseChunked(text, start);
    if (chunked === null) return null;
    ({ bodyRaw, end } = chunked);
  } else if (headers['content-length'] !== undefined) {
    end = start + Number(headers['content-length']);
    if (text.length < end) return null;
    bodyRaw = text.slice(start, end);
  } else {
    throw new Error(`response without a length (status ${status}): this client needs Content-Length or chunked`);
  }
  const body = Buffer.from(bodyRaw, 'latin1').toString('utf8');
  return { response: { status, headers, body }, rest: text.slice(end) };
}

/**
 * @param {string} text
 * @param {number} start
 * @returns {{ bodyRaw: string, end: number } | null}
 */
function parseChunked(text, start) {
  let pos = start;
  let bodyRaw = '';
  for (;;) {
    const lineEnd = text.indexOf('\r\n', pos);
    if (lineEnd < 0) return null;
    const size = parseInt(text.slice(pos, lineEnd), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    pos = lineEnd + 2;
    if (size === 0) {
      const trailerEnd = text.indexOf('\r\n', pos);
      if (trailerEnd < 0) return null;
      return { bodyRaw, end: trailerEnd + 2 };
    }
    if (text.length < pos + size + 2) return null;
    bodyRaw += text.slice(pos, pos + size);
    pos += size + 2;
  }
}
