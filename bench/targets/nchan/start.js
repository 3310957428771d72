// Starts nginx + Nchan (Debian's nginx and libnginx-mod-nchan) as a benchmark
// peer of comet-server, on loopback, from nginx.conf.template beside this file.
//
//   import { startNchan } from './targets/nchan/start.js';
//   const nchan = await startNchan({ workers: 2, port: 0 });
//   // nchan.port, nchan.pids() (master first, then workers), nchan.stop()
//
// Everything it writes (config, pid file, error log, temp paths) lives in a
// fresh temp dir that stop() removes. nginx runs in the foreground
// (daemon off) as a child of this process; stop() sends SIGTERM to the master
// and SIGKILLs whatever of it is left after 5 s. Install the packages with
//   apt-get install -y nginx libnginx-mod-nchan
// (Debian 12's nginx-light is only a transitional package that pulls in nginx.)
//
// Run directly for a smoke test: node bench/targets/nchan/start.js [--workers 1]

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep } from '../../lib/common.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const templatePath = path.join(here, 'nginx.conf.template');

const MODULE_CANDIDATES = [
  '/usr/lib/nginx/modules/ngx_nchan_module.so',
  '/usr/share/nginx/modules/ngx_nchan_module.so',
  '/usr/lib64/nginx/modules/ngx_nchan_module.so',
];

/** The nginx binary, or null. */
export function findNginx() {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** Path of ngx_nchan_module.so: the usual places, else what dpkg says the package installed. */
export function findNchanModule() {
  for (const p of MODULE_CANDIDATES) if (fs.existsSync(p)) return p;
  const r = spawnSync('dpkg', ['-L', 'libnginx-mod-nchan'], { encoding: 'utf8' });
  const hit = (r.stdout ?? '').split('\n').find((l) => l.endsWith('/ngx_nchan_module.so'));
  return hit && fs.existsSync(hit) ? hit : null;
}

/** Installed versions of the packages, for the report ("not installed" where dpkg does not know them). */
export function packageVersions(names = ['nginx', 'nginx-common', 'libnginx-mod-nchan']) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const n of names) {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', n], { encoding: 'utf8' });
    out[n] = r.status === 0 && r.stdout ? r.stdout : 'not installed';
  }
  return out;
}

/**
 * Pids of the direct children of pid (from /proc/PID/task/PID/children, else a /proc scan).
 * @param {number} pid
 * @returns {number[]}
 */
export function childPids(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    if (text) return text.split(/\s+/).map(Number);
  } catch {
    /* fall back to a scan */
  }
  /** @type {number[]} */
  const kids = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return kids;
}

/**
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    /** @param {boolean} ok */
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Renders the template; vars are {DIR, PORT, WORKERS, MODULE}.
 * @param {Record<string, string | number>} vars
 */
export function renderConfig(vars) {
  const text = fs.readFileSync(templatePath, 'utf8');
  const out = text.replace(/\{\{([A-Z_]+)\}\}/g, (m, k) => {
    if (!(k in vars)) throw new Error(`nginx.conf.template: no value for ${m}`);
    return String(vars[k]);
  });
  return out;
}

/**
 * Starts nginx + Nchan with `workers` worker processes on 127.0.0.1:port
 * (port 0 or absent: a free one). Resolves once the port answers and all
 * workers are up: {pids(), masterPid, port, dir, confPath, errorLog(), stop(), exited}.
 * prefix: a command to run nginx under, e.g. ['taskset', '-c', '0'].
 * @param {{ workers?: number, port?: number, prefix?: string[], startTimeoutMs?: number }} [opts]
 */
export async function startNchan({ workers = 1, port = 0, prefix = [], startTimeoutMs = 15_000 } = {}) {
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error(`workers must be 1..64, got ${workers}`);
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx not found: apt-get install -y nginx libnginx-mod-nchan');
  const module = findNchanModule();
  if (!module) throw new Error('ngx_nchan_module.so not found: apt-get install -y libnginx-mod-nchan');
  if (!port) port = await freePort();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nchan-bench-'));
  const confPath = path.join(dir, 'nginx.conf');
  try {
    // Workers run as nobody when nginx starts as root: they must reach the temp paths.
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(confPath, renderConfig({ DIR: dir, PORT: port, WORKERS: workers, MODULE: module }));
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const errorLogPath = path.join(dir, 'error.log');
  const errorLog = () => {
    try {
      return fs.readFileSync(errorLogPath, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };

  // -e: the error log before the config is read (the compiled-in one may not be writable)
  const args = ['-c', confPath, '-p', dir + '/', '-e', errorLogPath];
  const cmd = prefix.length ? prefix[0] : nginx;
  const cmdArgs = prefix.length ? [...prefix.slice(1), nginx, ...args] : args;
  const proc = spawn(cmd, cmdArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
  const masterPid = /** @type {number} */ (proc.pid);
  /** @type {number[]} */
  let workerPids = [];

  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  const stop = async () => {
    const alive = proc.exitCode === null && proc.signalCode === null;
    const known = [...workerPids];
    if (alive) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    // A worker that outlived a killed master: end it by its pid.
    for (const pid of known) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (/nginx/.test(stat)) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    cleanup();
  };

  const deadline = Date.now() + startTimeoutMs;
  try {
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`nginx exited (${proc.exitCode ?? proc.signalCode}) before answering on ${port}\n${stderr}\n${errorLog()}`);
      }
      workerPids = childPids(masterPid);
      if (workerPids.length === workers && (await canConnect(port))) break;
      if (Date.now() > deadline) {
        throw new Error(
          `nginx did not answer on 127.0.0.1:${port} with ${workers} workers within ${startTimeoutMs} ms (workers seen: ${workerPids.length})\n${stderr}\n${errorLog()}`,
        );
      }
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    kind: 'nchan',
    workers,
    port,
    dir,
    confPath,
    masterPid,
    pid: masterPid,
    proc,
    exited,
    /** Master first, then the workers as they are now (re-read: a crashed worker is replaced). */
    pids: () => {
      const now = childPids(masterPid);
      if (now.length) workerPids = now;
      return [masterPid, ...workerPids];
    },
    errorLog,
    stop,
  };
}

// Smoke test: start, publish, subscribe, print status, stop.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--workers');
  const workers = i > 0 ? Number(process.argv[i + 1]) : 1;
  const n = await startNchan({ workers });
  try {
    console.log(`nginx master ${n.masterPid}, pids ${n.pids().join(' ')}, port ${n.port}, conf ${n.confPath}`);
    const base = `http://127.0.0.1:${n.port}`;
    const sub = fetch(`${base}/sub?channel=smoke`).then(async (r) => `${r.status} ${await r.text()}`);
    await sleep(200);
    const pub = await fetch(`${base}/pub?channel=smoke`, { method: 'POST', body: 'hello' });
    console.log(`publish: ${pub.status} ${JSON.stringify(await pub.text())}`);
    console.log(`subscriber got: ${await sub}`);
    const get = await fetch(`${base}/pub?channel=smoke`);
    console.log(`GET on /pub: ${get.status} ${JSON.stringify(await get.text())}`);
    console.log((await (await fetch(`${base}/nchan_status`)).text()).trim());
  } finally {
    await n.stop();
  }
}
