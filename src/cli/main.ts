#!/usr/bin/env node
/**
 * The comet-server command: parses options, starts the threads, and turns
 * signals into a graceful shutdown (a second signal forces the exit).
 */
import { ConfigError, helpText, parseCommandLine } from '../config/parse.js';
import { loadUws, NativeUwsUnavailableError } from '../uws.js';
import { createLogger } from '../log.js';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return badOption(err);
  }
  const { config } = parsed;
  // Before anything else, --help included: a machine that cannot run the
  // server hears so in one line, whatever it asked for.
  let runtime;
  try {
    runtime = loadUws(config.uwsBuild, config.maxHeaderBytes);
  } catch (err) {
    if (!(err instanceof NativeUwsUnavailableError)) throw err;
    process.stderr.write(`comet-server: ${err.message}\n`);
    return 1;
  }
  if (parsed.help) {
    process.stdout.write(helpText());
    return 0;
  }
  const log = createLogger(config.logLevel, { thread: 'main' });
  const { startServer } = await import('../server/supervisor.js');
  let server;
  try {
    // The threads load the very build this thread chose.
    server = await startServer({ ...config, uwsBuild: runtime.version }, log);
  } catch (err) {
    // A key that cannot be read or used is an option's fault, found only once the files are read.
    if (err instanceof ConfigError) return badOption(err);
    log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    return 1;
  }
  // The admin listener, when there is one, is named beside the public one.
  const admin = config.adminPort === 0 ? {} : { adminHost: config.adminHost || config.host, adminPort: config.adminPort };
  log.info(
    { host: config.host, port: server.port, ...admin, threads: config.threads, path: config.path, node: process.version, uws: runtime.version },
    'listening',
  );
  if (config.faultInjection === 'on') log.warn('fault injection is enabled (--fault-injection on): POST /_fault/crash crashes a thread');

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    server.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const code = await server.stopped;
  log.info({ code }, 'stopped');
  return code;
}

/** An option the server cannot run with: one line on stderr, exit 2. */
function badOption(err: ConfigError): number {
  process.stderr.write(`comet-server: ${err.message}\n`);
  return 2;
}

main().then(
  // Every worker thread has ended by now; nothing else is worth waiting for.
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`comet-server: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
