/**
 * The live chat demo (`--demo on`): demo/index.html and demo/app.js from the
 * package root, and the client library's built files (dist/client/*.js) under
 * /demo/client/, all read into memory once when the worker thread starts.
 * Nothing is read from disk per request, and only these paths exist: anything
 * else under /demo/ is a 404.
 */
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: this file is dist/http/demo.js. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEMO_PREFIX = '/demo/';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

export interface DemoFile {
  contentType: string;
  body: Buffer;
}

/**
 * The demo's files by URL path. index.html names the protocol endpoint
 * (`--path`) in a meta tag, filled in here, so that app.js finds it.
 */
export function loadDemoFiles(protocolPath: string, root = ROOT): Map<string, DemoFile> {
  const files = new Map<string, DemoFile>();
  const add = (urlPaths: string[], file: string, transform?: (text: string) => string) => {
    const type = TYPES[path.extname(file)];
    if (type === undefined) return;
    const raw = readFileSync(file);
    const entry = { contentType: type, body: transform ? Buffer.from(transform(raw.toString('utf8'))) : raw };
    for (const urlPath of urlPaths) files.set(urlPath, entry);
  };
  const escaped = protocolPath.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const html = (text: string) => text.replace('%COMET_PATH%', escaped);
  add([DEMO_PREFIX, `${DEMO_PREFIX}index.html`], path.join(root, 'demo', 'index.html'), html);
  add([`${DEMO_PREFIX}app.js`], path.join(root, 'demo', 'app.js'));
  const clientDir = path.join(root, 'dist', 'client');
  let names: string[];
  try {
    names = readdirSync(clientDir);
  } catch (err) {
    throw new Error(`--demo on needs the built client library in ${clientDir} (npm run build): ${(err as Error).message}`);
  }
  for (const name of names) {
    if (name.endsWith('.js')) add([`${DEMO_PREFIX}client/${name}`], path.join(clientDir, name));
  }
  return files;
}
