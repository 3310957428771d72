/**
 * Starts the built server (dist/cli/main.js) with this Node.js on a free
 * loopback port, prints what it runs on (Node version, glibc version, and the
 * uWebSockets.js build named by the `uws` field of its listening line, where
 * it logs one), then stops it. A server that does not start is reported with
 * its output and a non-zero exit: the suites would fail the same way, less
 * clearly. Run by .ci/run before each suite run on another Node.js.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const START_TIMEOUT_MS = 15000;
const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const glibc = process.report.getReport().header.glibcVersionRuntime ?? 'none';
const runtime = `Node ${process.version}, glibc ${glibc}`;

const server = spawn(process.execPath, [main, '--port', '0', '--host', '127.0.0.1', '--threads', '1'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let stdout = '';
let stderr = '';
let listening = false;
server.stdout.setEncoding('utf8');
server.stderr.setEncoding('utf8');
server.stderr.on('data', (chunk) => (stderr += chunk));

function fail(why) {
  console.error(`${runtime}: ${why}\n--- stdout ---\n${stdout.slice(-2000)}\n--- stderr ---\n${stderr.slice(-2000)}`);
  server.kill('SIGKILL');
  process.exit(1);
}

const timer = setTimeout(() => fail(`no listening line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);

function listeningLine() {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line);
      if (entry.msg === 'listening') return entry;
    } catch {
      // a line still being written, or not JSON
    }
  }
  return undefined;
}

server.stdout.on('data', (chunk) => {
  stdout += chunk;
  if (listening) return;
  const entry = listeningLine();
  if (!entry) return;
  listening = true;
  clearTimeout(timer);
  const uws = 'uws' in entry ? `uws ${JSON.stringify(entry.uws)}` : 'no uws field in its listening line';
  console.log(`${runtime}: the server started (${uws})`);
  server.kill('SIGTERM');
});

server.on('exit', (code, signal) => {
  if (!listening) fail(`the server exited (${signal ?? `code ${code}`}) before listening`);
});
