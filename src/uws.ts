/**
 * Chooses and loads a native uWebSockets.js binary, and refuses to run
 * without one.
 *
 * uWebSockets.js is published only outside the npm registry, so the server
 * ships two registry mirrors of it (package.json aliases them by version):
 * the newest build, whose binaries need glibc 2.38, and an older one built
 * against glibc 2.27 for the distributions most servers still run. At start
 * the newest build that loads on the running Node.js ABI and C library wins.
 * Binaries are loaded by path, never through the packages' entry points, so
 * that no JavaScript fallback (which some mirrors carry, an order of
 * magnitude slower) can ever stand in for them.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as UWS from 'uws-20.57';

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket } from 'uws-20.57';

export class NativeUwsUnavailableError extends Error {
  readonly code = 'COMET_ERR_UWS_NOT_NATIVE';
}

export interface UwsBuild {
  /** The uWebSockets.js release, as its own loader names it. */
  version: string;
  /** The dependency alias in package.json. */
  alias: string;
  /** Where it comes from on the registry. */
  source: string;
  /** Oldest glibc its Linux binaries load with. */
  glibc: string;
  /** Node.js major version by ABI (process.versions.modules), for the ABIs whose binary is this release. */
  node: Readonly<Record<string, number>>;
}

/** Newest first: the order in which `auto` tries them. */
export const UWS_BUILDS: readonly UwsBuild[] = [
  { version: '20.57.0', alias: 'uws-20.57', source: '@btc-vision/uwebsockets.js@20.57.0', glibc: '2.38', node: { 115: 20, 127: 22, 137: 24, 141: 25 } },
  // The package also carries an ABI 137 (Node 24) binary, but that one is a
  // copy of release 20.56 needing glibc 2.38, where 20.57 loads anyway.
  { version: '20.51.0', alias: 'uws-20.51', source: '@based/uws@6.0.1', glibc: '2.27', node: { 115: 20, 127: 22 } },
];

export const UWS_CHOICES = ['auto', ...UWS_BUILDS.map((b) => shortVersion(b))] as const;

/**
 * The loaded module. Only loadUws() sets it; the HTTP front end reads it after
 * its thread called loadUws().
 */
export let uws: typeof UWS;
let loaded: UwsBuild | undefined;

const require = createRequire(import.meta.url);

/** How --uws-build names a build: its release without the trailing .0. */
export function shortVersion(build: UwsBuild): string {
  return build.version.replace(/\.0$/, '');
}

/**
 * Loads the build asked for ('auto': the newest that loads here) and returns
 * it. Throws NativeUwsUnavailableError, with one line saying
 * what would work, when none does. `maxHeaderBytes` bounds a request's head
 * (431 above); uWS reads it from its environment variable once, when the
 * binary loads into the process, so it is set before.
 */
export function loadUws(choice: string, maxHeaderBytes?: number): UwsBuild {
  if (loaded) return loaded;
  refuseFallbackRequest();
  if (maxHeaderBytes !== undefined) process.env.UWS_HTTP_MAX_HEADERS_SIZE = String(maxHeaderBytes);
  const candidates = choice === 'auto' ? UWS_BUILDS : UWS_BUILDS.filter((b) => shortVersion(b) === choice || b.version === choice);
  if (candidates.length === 0) throw new NativeUwsUnavailableError(`no uWebSockets.js build ${choice}; choose one of ${UWS_CHOICES.join(', ')}`);
  const failures: string[] = [];
  for (const build of candidates) {
    const attempt = tryLoad(build);
    if ('module' in attempt) {
      uws = attempt.module;
      loaded = build;
      return build;
    }
    failures.push(`${build.version}: ${attempt.reason}`);
  }
  throw new NativeUwsUnavailableError(
    `no native uWebSockets.js build loads on Node.js ${process.version} (ABI ${process.versions.modules}, ${process.platform}-${process.arch}, ${libcDescription()}) ` +
      `[${failures.join('; ')}]. comet-server runs on ${supportedCombinations()}.`,
  );
}

/** The combinations the shipped builds cover, in words, for the refusal. */
function supportedCombinations(): string {
  return UWS_BUILDS.map((b) => `Node.js ${majors(b)} with glibc ${b.glibc} or newer (${distributionsFor(b.glibc)})`).join(', or ');
}

function majors(build: UwsBuild): string {
  const list = Object.values(build.node);
  return list.length === 1 ? String(list[0]) : `${list.slice(0, -1).join(', ')} or ${list.at(-1)}`;
}

function distributionsFor(glibc: string): string {
  return glibc === '2.38' ? 'Debian 13, Ubuntu 24.04, Fedora 39, RHEL 10 and later' : 'Debian 10-12, Ubuntu 18.04-22.04, RHEL 8-9 and later';
}

function refuseFallbackRequest(): void {
  const fallback = process.env.UWS_USE_FALLBACK;
  if (fallback !== undefined && fallback !== '' && fallback !== '0' && fallback.toLowerCase() !== 'false') {
    throw new NativeUwsUnavailableError(
      `UWS_USE_FALLBACK=${fallback} asks uWebSockets.js for its slow JavaScript fallback; ` +
        'comet-server runs only on a native uWebSockets.js binary. Unset UWS_USE_FALLBACK.',
    );
  }
}

function tryLoad(build: UwsBuild): { module: typeof UWS } | { reason: string } {
  const abi = process.versions.modules;
  if (build.node[abi] === undefined) return { reason: `no binary for Node.js ABI ${abi}` };
  let packageDir: string;
  try {
    packageDir = path.dirname(require.resolve(build.alias));
  } catch {
    return { reason: `package ${build.alias} (${build.source}) is not installed` };
  }
  const binary = path.join(packageDir, `uws_${process.platform}_${process.arch}_${abi}.node`);
  if (!existsSync(binary)) return { reason: `no binary for ${process.platform}-${process.arch}` };
  try {
    return { module: require(binary) as typeof UWS };
  } catch (err) {
    return { reason: loadError(err as Error, binary) };
  }
}

/** dlopen's message, without the binary's path (already implied) and on one line. */
function loadError(err: Error, binary: string): string {
  const needs = /version `(GLIBC_[\d.]+)' not found/.exec(err.message);
  if (needs) return `needs glibc ${needs[1]!.slice('GLIBC_'.length)}`;
  return err.message.split(binary).join('binary').split('\n')[0]!;
}

function libcDescription(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const glibc = header?.glibcVersionRuntime;
  if (glibc) return `glibc ${glibc}`;
  return process.platform === 'linux' ? 'no glibc (musl?)' : process.platform;
}
