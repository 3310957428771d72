#!/usr/bin/env node
// The least any uWebSockets.js server can do per request: one route answering
// every request with the same fixed body, without reading its query. No
// protocol server on uWebSockets.js can use less CPU per put than this, so it
// is the floor that put-floor.js compares the ceiling, comet-server and Nchan
// with.
//
//   node bench/experiments/empty-uws.js --port 0
//
// Logs {"msg":"listening","port":P} on stdout, like the other targets.

import * as runtime from '../../dist/uws.js';

runtime.loadUws(process.env.COMET_UWS_BUILD || 'auto');
const i = process.argv.indexOf('--port');
const port = i >= 0 ? Number(process.argv[i + 1]) : 0;
const BODY = '{"time":1}';

runtime.uws
  .App()
  .any('/*', (res) => {
    res.writeHeader('Content-Type', 'application/json; charset=utf-8').end(BODY);
  })
  .listen('127.0.0.1', port, (socket) => {
    if (!socket) process.exit(1);
    process.stdout.write(`${JSON.stringify({ msg: 'listening', port: runtime.uws.us_socket_local_port(socket) })}\n`);
    process.on('SIGTERM', () => process.exit(0));
  });
