// Scenario 9, streams: the fan-out (./fanout.js) and idle (./idle.js)
// measurements again with streaming subscribers, each holding a server-sent
// events stream (`sse`) or a WebSocket (`ws`) open instead of chaining
// long-polls, and with comet-server's own long-poll path (`longpoll`) beside
// them in the same run. Rows of their own (scenarios stream-fanout and
// stream-idle, the transport as their case), so that measuring them again
// never replaces the long-poll fan-out and idle rows measured beside the
// ceiling. The raw uWebSockets.js ceiling has no streams, and Nchan's
// long-poll rows are in the fan-out and idle sections already.

import * as fanout from './fanout.js';
import * as idle from './idle.js';

/**
 * @typedef {import('../load/messages.js').Transport} Transport
 * @typedef {import('../runner.js').Unit} Unit
 */

/** @type {Transport[]} */
export const TRANSPORTS = ['sse', 'ws', 'longpoll'];
/** The scenario names --scenario takes: both parts, or one. */
export const NAMES = ['streams', 'stream-fanout', 'stream-idle'];

/**
 * Whether a target measures a transport here.
 * @param {string} target its id
 * @param {Transport} transport
 */
const measures = (target, transport) => target !== 'ceiling' && (transport !== 'longpoll' || !target.startsWith('nchan-'));

/**
 * The units of the streams scenario (or of one of its parts), in the order
 * fan-out, idle; within each by transport, count, then target.
 * @param {string} name one of NAMES
 * @param {string[]} targets
 * @param {import('../settings.js').Settings} settings
 * @returns {Unit[]}
 */
export function plan(name, targets, settings) {
  /** @type {Unit[]} */
  const units = [];
  const parts = [
    { scenario: 'stream-fanout', counts: settings.streamWaiters, run: fanout.run },
    { scenario: 'stream-idle', counts: settings.streamIdle, run: idle.run },
  ].filter((p) => name === 'streams' || name === p.scenario);
  for (const { scenario, counts, run } of parts) {
    for (const transport of settings.transports) {
      for (const n of counts) {
        for (const target of targets.filter((t) => measures(t, transport))) {
          units.push({ scenario, case: transport, waiters: n, target, pin: settings.pinning, run: (ctx) => run(ctx, n, transport) });
        }
      }
    }
  }
  return units;
}
