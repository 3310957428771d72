/**
 * Loads the native uWebSockets.js binary, and refuses to run without it.
 *
 * The registry mirror we depend on falls back silently to a JavaScript
 * re-implementation that is an order of magnitude slower when its binary does
 * not load (or when UWS_USE_FALLBACK is set). A production endpoint must never
 * run like that unnoticed, so we load the binary ourselves and fail loudly.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as UWS from 'uWebSockets.js';

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';

export class NativeUwsUnavailableError extends Error {
  readonly code = 'COMET_ERR_UWS_NOT_NATIVE';
}

const require = createRequire(import.meta.url);

function loadNative(): typeof UWS {
  const fallback = process.env.UWS_USE_FALLBACK;
  if (fallback !== undefined && fallback !== '' && fallback !== '0' && fallback.toLowerCase() !== 'false') {
    throw new NativeUwsUnavailableError(
      `UWS_USE_FALLBACK=${fallback} asks uWebSockets.js for its slow JavaScript fallback; ` +
        'comet-server runs only on the native uWebSockets.js binary. Unset UWS_USE_FALLBACK.',
    );
  }
  const packageDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = path.join(
    packageDir,
    'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`,
  );
  try {
    return require(binary) as typeof UWS;
  } catch (err) {
    throw new NativeUwsUnavailableError(
      `The native uWebSockets.js binary for ${process.platform}-${process.arch}, Node.js ABI ` +
        `${process.versions.modules} (Node ${process.version}) did not load from ${binary}: ` +
        `${(err as Error).message}. comet-server refuses to run on the slow JavaScript fallback; ` +
        'use a Node.js version this uWebSockets.js build supports (Node 20).',
    );
  }
}

export const uws: typeof UWS = loadNative();
