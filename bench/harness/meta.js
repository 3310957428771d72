// What a report says about the run itself: the machine, the versions of
// everything measured, the load average around it.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { loadAverage, machineInfo } from '../lib/common.js';
import { redisVersion } from '../lib/redis.js';
import { repoRoot } from '../lib/server.js';
import { findNginx, packageVersions } from '../targets/nchan/start.js';
import { loadUws } from '../../dist/uws.js';

const require = createRequire(import.meta.url);

/** @param {string} name */
function packageVersion(name) {
  try {
    return require(`${name}/package.json`).version;
  } catch {
    return 'not installed';
  }
}

/** The build comet-server and the ceiling load here (COMET_UWS_BUILD pins one for both). */
function uwsBuild() {
  try {
    const build = loadUws(process.env.COMET_UWS_BUILD || 'auto');
    return `${build.version} (${build.source})`;
  } catch (err) {
    return `none loads: ${/** @type {Error} */ (err).message}`;
  }
}

/**
 * @param {string} cmd
 * @param {string[]} args
 * @param {RegExp} pattern
 */
function commandVersion(cmd, args, pattern) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return 'not installed';
  return pattern.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown';
}

/** " (git abc1234)", with a warning when src/ has uncommitted changes; '' outside a git checkout. */
/** @param {string} dir */
function gitOf(dir) {
  const head = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (head.error || head.status !== 0) return '';
  const dirty = spawnSync('git', ['-C', dir, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout?.trim();
  return ` (git ${head.stdout.trim()}${dirty ? ', with uncommitted changes in src/' : ''})`;
}

export function versions() {
  const own = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  const dpkg = packageVersions(['libnginx-mod-nchan']);
  const nginx = findNginx();
  return {
    // a subset merged in later may have measured other code than the run it joins
    'comet-server': `${own.version}${gitOf(repoRoot)}`,
    node: process.version,
    'uWebSockets.js': uwsBuild(),
    autocannon: packageVersion('autocannon'),
    nginx: nginx ? commandVersion(nginx, ['-v'], /nginx\/(\S+)/) : 'not installed',
    'libnginx-mod-nchan': dpkg['libnginx-mod-nchan'],
    wrk: commandVersion('wrk', ['-v'], /wrk (\S+)/),
    'redis-server': redisVersion(),
  };
}

/**
 * @param {string} command
 * @param {import('./settings.js').Settings} settings
 */
export function startMeta(command, settings) {
  // a token is a credential: the results file says that one was given, never which
  const { authToken, ...kept } = settings;
  return {
    date: new Date().toISOString(),
    command: command.replace(/(--auth-token[= ])\S+/g, '$1(given)'),
    machine: machineInfo(),
    versions: versions(),
    settings: authToken ? { ...kept, authToken: '(given)' } : kept,
    loadAverage: { start: loadAverage(), end: null },
    pinning: settings.pinning,
    startedAt: Date.now(),
  };
}

/** @param {ReturnType<typeof startMeta>} meta */
export function finishMeta(meta) {
  const { startedAt, ...rest } = meta;
  return { ...rest, durationS: Math.round((Date.now() - startedAt) / 1000), loadAverage: { ...meta.loadAverage, end: loadAverage() } };
}
