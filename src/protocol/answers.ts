/**
 * The bodies the protocol answers with. Message bodies arrive here already
 * JSON-encoded (see jsonp.ts scriptSafeJson), so an answer is concatenation,
 * never a second serialisation.
 */
import type { CometError } from './errors.js';

export function timeAnswer(time: number): string {
  return `{"time":${time}}`;
}

export function messagesAnswer(time: number, bodies: readonly string[], start = 0, end = bodies.length, missed = false): string {
  let json = `{"time":${time},"messages":[`;
  for (let i = start; i < end; i++) json += i === start ? bodies[i] : ',' + bodies[i];
  return missed ? json + '],"missed":true}' : json + ']}';
}

export function errorAnswer(err: CometError): string {
  return `{"error":${JSON.stringify(err.message)},"code":"${err.code}"}`;
}
