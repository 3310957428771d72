/**
 * Process lifecycle: graceful shutdown, the crash policy, times across
 * restarts, the native-binary guard, and the command line.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { shortVersion, UWS_BUILDS } from '../src/uws.js';
import { connectionRefused, parseLogLines, runCli, startServer, within, type CliResult, type CometServer, type HttpResponse } from './helpers/server.js';
import { channels, checkMessages, uniq } from './helpers/protocol.js';

/** Starts `n` gets waiting on distinct channels; half from a put time, half without time. */
async function waitingGets(srv: CometServer, n: number): Promise<{ gets: Array<Promise<HttpResponse>>; floors: number[] }> {
  const chs = channels('life', n);
  const floors = await Promise.all(chs.map((c, i) => srv.put(c, `before-${i}`)));
  const gets = chs.map((c, i) => srv.call({ method: 'get', channel: c, timeout: 25, ...(i % 2 ? { time: floors[i] } : {}) }, { timeoutMs: 20000 }));
  return { gets, floors };
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  for (const threads of [1, 3]) {
    t.test(`graceful shutdown on ${signal}, threads=${threads}`, async (t) => {
      const srv = await startServer({ t, threads });
      const n = 12;
      const { gets, floors } = await waitingGets(srv, n);
      t.ok(await srv.waitWaiting(n, { exact: true, timeoutMs: 5000 }), `${n} gets waiting`);
      const answers = Promise.allSettled(gets);
      const stop = await srv.stop(signal, 10000);
      t.equal(stop.code, 0, 'exit code 0', { stop, out: srv.outputTail(1000) });
      t.equal(stop.signal, null, 'exited by itself, not killed by the signal');
      t.notOk(stop.killed, 'did not need SIGKILL');
      t.ok(stop.ms < 5000, 'exited within 5 s', { ms: stop.ms });
      const results = await within(answers, 5000, 'waiting gets');
      results.forEach((r, i) => {
        if (r.status !== 'fulfilled') {
          t.fail(`get ${i}: answered before exit`, { error: String(r.reason) });
          return;
        }
        t.equal(r.value.status, 200, `get ${i}: 200`, { body: r.value.body });
        t.strictSame(r.value.json?.messages, [], `get ${i}: the timeout answer, no messages`);
        t.ok(r.value.json?.time >= floors[i]!, `get ${i}: time >= channel time`, { body: r.value.body });
        t.not(r.value.json?.missed, true, `get ${i}: not missed`);
      });
      t.ok(await connectionRefused(srv), 'no longer accepting connections');
    });
  }
}

t.test('crash policy: a worker thread crash shuts the whole server down with exit code 1', async (t) => {
  const srv = await startServer({ t, threads: 3, env: { COMET_FAULT_INJECTION: 'on' } });
  const n = 12;
  const { gets } = await waitingGets(srv, n);
  t.ok(await srv.waitWaiting(n, { exact: true, timeoutMs: 5000 }), `${n} gets waiting`);
  const answers = Promise.allSettled(gets);
  const crash = await srv.request({ method: 'POST', path: '/_fault/crash', query: { thread: 1 }, timeoutMs: 5000 }).catch((e: Error) => e);
  t.comment(`crash request: ${crash instanceof Error ? crash.message : `${crash.status} ${crash.body}`}`);
  const exit = await srv.waitExit(10000);
  t.ok(exit, 'the process exited by itself within 10 s', { out: srv.outputTail(1000) });
  t.equal(exit?.code, 1, 'exit code 1', { exit });
  const results = await within(answers, 5000, 'every waiting get settles (answered or closed)');
  const answered = results.filter((r) => r.status === 'fulfilled');
  t.ok(answered.length >= 1, 'gets held by the surviving threads were answered', { answered: answered.length, of: n });
  for (const r of answered) {
    if (r.status !== 'fulfilled') continue;
    if (r.value.status === 503) {
      // A get whose connection died with the crashed thread is retried by the
      // test client (ECONNRESET on a reused socket) and reaches a draining thread.
      t.equal(r.value.json?.code, 'COMET_ERR_SHUTTING_DOWN', 'a retried get is refused: shutting down', { body: r.value.body });
      continue;
    }
    t.equal(r.value.status, 200, 'answered with 200', { body: r.value.body });
    t.strictSame(r.value.json?.messages, [], 'the timeout answer');
  }
  const fatal = srv.logs().filter((l) => l.level === 60 || l.level === 'fatal');
  t.ok(fatal.length >= 1, 'a fatal log line', { out: srv.outputTail(2000) });
  t.ok(
    fatal.some((l) => l.thread === 1 || l.threadId === 1 || /thread\D{0,3}1\b/i.test(JSON.stringify(l))),
    'the fatal line names thread 1',
    { fatal },
  );
});

t.test('crash policy with a single thread: exit code 1', async (t) => {
  const srv = await startServer({ t, threads: 1, env: { COMET_FAULT_INJECTION: 'on' } });
  await srv.request({ method: 'POST', path: '/_fault/crash', query: { thread: 0 }, timeoutMs: 5000 }).catch(() => undefined);
  const exit = await srv.waitExit(10000);
  t.equal(exit?.code, 1, 'exit code 1', { exit, out: srv.outputTail(1000) });
});

t.test('without COMET_FAULT_INJECTION the fault path is 404', async (t) => {
  const srv = await startServer({ t, threads: 3 });
  const res = await srv.request({ method: 'POST', path: '/_fault/crash', query: { thread: 1 } });
  t.equal(res.status, 404, 'POST /_fault/crash: 404');
  t.notOk(await srv.waitExit(300), 'the server is still running');
  const ch = uniq('nofault');
  const s = await srv.sync(ch);
  await srv.put(ch, 'ok');
  checkMessages(t, await srv.get(ch, { time: s, timeout: 0 }), ['ok'], 'and serving');
});

for (const threads of [1, 3]) {
  t.test(`times after a restart are larger, and old times give missed (threads=${threads})`, async (t) => {
    const chs = channels('restart', 4);
    const a = await startServer({ t, threads });
    const before = await Promise.all(chs.map((c) => a.put(c, 'before restart')));
    const syncBefore = await Promise.all(chs.map((c) => a.sync(c)));
    const stop = await a.stop('SIGTERM');
    t.equal(stop.code, 0, 'first server stopped with exit code 0', { stop, out: a.outputTail(800) });
    const b = await startServer({ t, threads });
    for (const [i, c] of chs.entries()) {
      const old = await b.get(c, { time: syncBefore[i], timeout: 5 });
      t.equal(old.missed, true, `channel ${i}: a time from before the restart gives missed:true`, { body: old.res.body });
      t.strictSame(old.messages, [], 'nothing held from before');
      t.ok(old.res.ms < 1000, 'answered at once', { ms: old.res.ms });
      t.ok(old.time >= syncBefore[i]!, 'time not older than the time sent');
      const after = await b.put(c, 'after restart');
      t.ok(after > before[i]! && after > syncBefore[i]!, `channel ${i}: put after the restart has a larger time`, {
        before: before[i],
        after,
      });
      const again = await b.get(c, { time: before[i], timeout: 5 });
      t.equal(again.missed, true, 'still missed:true');
      t.strictSame(again.messages, ['after restart'], 'with the messages held since');
      t.equal(again.time, after);
    }
  });
}

/** A refusal is one line on stderr, exit 1: no stack trace, no JSON log to dig through. */
function oneLineRefusal(t: Test, r: CliResult, what: string): void {
  t.notOk(r.listened, `${what}: never listens`);
  t.notOk(r.timedOut, `${what}: exits by itself`);
  t.equal(r.code, 1, `${what}: exit code 1`, { code: r.code, signal: r.signal });
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
  t.match(r.stderr, /^comet-server: [^\n]*uWebSockets\.js[^\n]*\n$/, `${what}: one line on stderr saying why`, { stderr: r.stderr.slice(0, 600) });
  t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}

t.test('refuses the uWebSockets.js JavaScript fallback (UWS_USE_FALLBACK=1) in one line, for every command', async (t) => {
  for (const args of [['--port', '0', '--host', '127.0.0.1', '--threads', '1'], ['--help']]) {
    const r = await runCli(args, { env: { UWS_USE_FALLBACK: '1' } });
    oneLineRefusal(t, r, args.join(' '));
  }
});

/** Whether a binary loads in a fresh Node of this version: what the server's choice must agree with. */
function loadsHere(binary: string): boolean {
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(binary)})`], { stdio: 'ignore' }).status === 0;
}

t.test('runs on the newest uWebSockets.js build that loads here; a pinned one that cannot is refused in one line', async (t) => {
  const require = createRequire(import.meta.url);
  const abi = process.versions.modules;
  const loadable = UWS_BUILDS.map((build) => {
    const binary = path.join(path.dirname(require.resolve(build.alias)), `uws_${process.platform}_${process.arch}_${abi}.node`);
    return { build, loads: build.node[abi] !== undefined && existsSync(binary) && loadsHere(binary) };
  });
  t.comment(`Node ${process.version}: ${loadable.map((l) => `${l.build.version} ${l.loads ? 'loads' : 'does not load'}`).join(', ')}`);
  const newest = loadable.find((l) => l.loads);
  t.ok(newest, 'some shipped build loads on this Node.js and C library');

  const srv = await startServer({ t, threads: 2 });
  const listening = parseLogLines(srv.stdout).find((l) => l.msg === 'listening');
  t.equal(listening?.uws, newest?.build.version, 'auto: the newest build that loads');
  t.equal(listening?.node, process.version, 'the listening line names the Node.js version');
  const info = (await srv.metrics()).value('comet_build_info', { node: process.version, uws: newest!.build.version });
  t.equal(info, 1, 'and /metrics says so, from a worker thread');

  for (const { build, loads } of loadable) {
    const pin = shortVersion(build);
    const r = await runCli(['--port', '0', '--host', '127.0.0.1', '--threads', '1', '--uws-build', pin]);
    if (loads) {
      t.ok(r.listened, `--uws-build ${pin} listens here`, { stderr: r.stderr.slice(0, 300) });
      t.equal(parseLogLines(r.stdout).find((l) => l.msg === 'listening')?.uws, build.version, `--uws-build ${pin} runs on it`);
    } else {
      oneLineRefusal(t, r, `--uws-build ${pin}`);
      t.match(r.stderr, /runs on Node\.js 20, 22, 24 or 25 with glibc 2\.38 or newer .*Node\.js 20 or 22 with glibc 2\.27 or newer/, 'names what works');
      const help = await runCli(['--help', '--uws-build', pin]);
      oneLineRefusal(t, help, `--help --uws-build ${pin}`);
    }
  }
});

t.test('--help prints the options and exits 0', async (t) => {
  const r = await runCli(['--help'], { timeoutMs: 10000 });
  t.equal(r.code, 0, 'exit code 0', { stderr: r.stderr });
  t.notOk(r.listened, 'does not start the server');
  for (const opt of [
    '--port',
    '--host',
    '--threads',
    '--poll-timeout',
    '--buffer-size',
    '--max-waiting',
    '--max-message-bytes',
    '--max-body-bytes',
    '--max-channel-bytes',
    '--max-callback-length',
    '--cors-origin',
    '--max-header-bytes',
    '--uws-build',
  ]) {
    t.ok(r.stdout.includes(opt), `mentions ${opt}`);
  }
});

t.test('invalid option values exit non-zero with a clear message', async (t) => {
  const base = ['--host', '127.0.0.1'];
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--port', '0', '--threads', 'abc'], /threads/i],
    [[...base, '--threads', '1', '--port', '-5'], /port/i],
    [[...base, '--threads', '1', '--port', '70000'], /port/i],
    [[...base, '--port', '0', '--threads', '1', '--poll-timeout', 'abc'], /poll-timeout|poll timeout|pollTimeout/i],
    [[...base, '--port', '0', '--threads', '1', '--buffer-size', '-1'], /buffer-size|buffer size|bufferSize/i],
    [[...base, '--port', '0', '--threads', '1', '--no-such-option'], /no-such-option/i],
  ];
  for (const [args, mention] of cases) {
    const r = await runCli(args, { timeoutMs: 10000 });
    const label = args.slice(-2).join(' ');
    t.notOk(r.listened, `${label}: does not start`);
    t.ok(r.code !== 0 && r.code !== null, `${label}: non-zero exit`, { code: r.code, signal: r.signal, timedOut: r.timedOut });
    t.match(r.stdout + r.stderr, mention, `${label}: the message names the option`, { stderr: r.stderr.slice(0, 500), stdout: r.stdout.slice(0, 500) });
  }
});

t.test('COMET_POLL_TIMEOUT=1 works like --poll-timeout 1', async (t) => {
  const srv = await startServer({ t, threads: 1, env: { COMET_POLL_TIMEOUT: '1' } });
  const [a, b] = await Promise.all([srv.get(uniq('envtimeout'), {}, { timeoutMs: 10000 }), srv.get(uniq('envtimeout'), { timeout: 60 }, { timeoutMs: 10000 })]);
  checkMessages(t, a, [], 'no timeout param');
  t.ok(a.res.ms >= 700 && a.res.ms < 2500, 'answered after about 1 s', { ms: a.res.ms });
  checkMessages(t, b, [], 'timeout=60');
  t.ok(b.res.ms >= 700 && b.res.ms < 2500, 'clamped to about 1 s', { ms: b.res.ms });
});
