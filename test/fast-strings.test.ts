/**
 * The server's worker threads run with String.prototype in V8's fast mode
 * (server/fast-strings.ts): ioredis, loaded in every engine mode, leaves it
 * in dictionary mode, where every string method call on the request path is
 * a generic inline-cache lookup. Checked in the real server's threads, with
 * a probe preloaded into them.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
const PROBE = path.join(ROOT, 'test', 'fixtures', 'string-prototype-probe.mjs');
const IOREDIS = path.join(ROOT, 'node_modules', 'ioredis', 'built', 'index.js');

/** Runs node with `args` until `done` says its stderr holds what is wanted, or 15 s pass; the process is then killed. */
function stderrOf(args: string[], done: (stderr: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const finish = () => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(stderr);
    };
    const timer = setTimeout(finish, 15_000);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (done(stderr)) finish();
    });
    child.on('exit', finish);
  });
}

t.test('every worker thread holds String.prototype in fast mode', async (t) => {
  const cause = await stderrOf(
    ['--allow-natives-syntax', '-e', `require(${JSON.stringify(IOREDIS)}); process.stderr.write('fast=' + %HasFastProperties(String.prototype))`],
    (s) => s.includes('fast='),
  );
  t.comment(`without the fix, after loading ioredis: ${cause.trim() || '(no answer)'}`);

  const stderr = await stderrOf(
    ['--allow-natives-syntax', '--import', PROBE, MAIN, '--port', '0', '--host', '127.0.0.1', '--threads', '2'],
    (s) => (s.match(/string-prototype thread=/g) ?? []).length === 2,
  );
  const verdicts = [...stderr.matchAll(/string-prototype thread=(\d+) fast=(\w+)/g)].map((m) => m[2]);
  t.same(verdicts, ['true', 'true'], 'both threads: fast', { stderr: stderr.slice(0, 2000) });
});
