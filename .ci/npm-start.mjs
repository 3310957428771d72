/**
 * The README's `npm start`, run as written with this Node.js and its npm (on
 * a free loopback port through COMET_PORT=0 and COMET_HOST, which the README's
 * options table documents): waits for the listening line, prints what the
 * server runs on (Node, glibc, the uWebSockets.js build of its listening
 * line), publishes a message to a long-poll waiting for it, then stops the
 * server with SIGTERM and expects npm to end with exit 0. A server that does not start or
 * serve is reported with its output and a non-zero exit: the suites would
 * fail the same way, less clearly. Run by .ci/run on every other Node.js.
 */
import { spawn } from 'node:child_process';

const START_TIMEOUT_MS = 60_000;
const glibc = process.report.getReport().header.glibcVersionRuntime ?? 'none';
const runtime = `Node ${process.version}, glibc ${glibc}`;

const server = spawn('npm', ['start'], {
  env: { ...process.env, COMET_PORT: '0', COMET_HOST: '127.0.0.1', COMET_THREADS: '2' },
  stdio: ['ignore', 'pipe', 'pipe'],
  // Its own process group: the signal reaches the server, not only npm.
  detached: true,
});
let stdout = '';
let stderr = '';
server.stdout.setEncoding('utf8');
server.stderr.setEncoding('utf8');
server.stderr.on('data', (chunk) => (stderr += chunk));
const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve(signal ?? code)));

function fail(why) {
  console.error(`${runtime}: ${why}\n--- stdout ---\n${stdout.slice(-2000)}\n--- stderr ---\n${stderr.slice(-2000)}`);
  try {
    process.kill(-server.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  process.exit(1);
}

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

const listening = await new Promise((resolve) => {
  const timer = setTimeout(() => fail(`no listening line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
  server.stdout.on('data', (chunk) => {
    stdout += chunk;
    const entry = listeningLine();
    if (entry) {
      clearTimeout(timer);
      resolve(entry);
    }
  });
  void exited.then((how) => listeningLine() ?? fail(`npm start exited (${how}) before listening`));
});
console.log(`${runtime}: npm start listens (uWebSockets.js ${listening.uws})`);

const url = `http://127.0.0.1:${listening.port}/`;
const channel = `smoke-${process.pid}`;
const sync = await (await fetch(`${url}?method=sync&channel=${channel}`)).json();
const waiting = fetch(`${url}?method=get&channel=${channel}&time=${sync.time}&timeout=10`).then((res) => res.json());
const put = await (await fetch(`${url}?method=put&channel=${channel}&message=hello`)).json();
const got = await waiting;
if (got.time !== put.time || got.messages?.[0] !== 'hello') fail(`the long-poll answered ${JSON.stringify(got)} to the put ${JSON.stringify(put)}`);
console.log(`${runtime}: a put reached a waiting get`);

// To the server alone, as a service manager would: npm then ends with its code.
process.kill(listening.pid, 'SIGTERM');
const how = await exited;
if (how !== 0) fail(`npm start ended with ${how} after SIGTERM to the server, not 0`);
console.log(`${runtime}: stopped with exit 0`);
