// The load generators' child processes (autocannon, long-poll clients, wrk):
// every one is tracked from its start, so that all of them can be killed when
// a run ends or is abandoned after --run-timeout, and when this process exits;
// and their typed IPC messages are awaited with bounds.

import { fork, spawn } from 'node:child_process';
import { withTimeout } from '../../lib/common.js';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

/** @type {Set<ChildProcess>} */
const live = new Set();

/**
 * @template {ChildProcess} C
 * @param {C} child
 * @returns {C}
 */
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/**
 * Forks a Node.js script with an IPC channel (its output goes to ours).
 * @param {string} script
 */
export const forkTracked = (script) => track(fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));

/**
 * Spawns a command whose output is read through pipes.
 * @param {string} command
 * @param {string[]} args
 */
export const spawnTracked = (command, args) => track(spawn(command, args));

/** Kills every load process still running. */
export function killAll() {
  for (const c of live) c.kill('SIGKILL');
}
process.on('exit', killAll);

/**
 * The child's next message of this type; rejects on a {type:'fatal'} message,
 * when the child exits first, or after ms. `what` names the child in errors.
 * The caller knows which message of its child's has this type.
 * @param {ChildProcess} child
 * @param {string} type
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<{ type: string }>}
 */
export function nextMessage(child, type, ms, what) {
  return withTimeout(
    new Promise((resolve, reject) => {
      /** @param {number | null} code */
      const onExit = (code) => reject(new Error(`${what} exited (${code}) while waiting for ${type}`));
      /** @param {{ type: string, message?: string }} m */
      const onMessage = (m) => {
        if (m.type !== type && m.type !== 'fatal') return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (m.type === 'fatal') reject(new Error(`${what} failed: ${m.message}`));
        else resolve(m);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    }),
    ms,
    `${what} message ${type}`,
  );
}
