/**
 * A read's result with its messages as their JSON texts: what tests compare.
 * Engines give the texts as one run of UTF-8 bytes, `m1,m2` (engine.ts
 * ReadResult); this splits it at the commas between top-level values, and
 * fails when that does not give the `count` the engine reported.
 */
import type { Buffer } from 'node:buffer';
import type { Engine, ReadLimits, ReadResult } from '../../src/engine/engine.js';

export interface ReadTexts {
  time: number;
  bodies: string[];
  missed: boolean;
}

/** `result`, or a get's answer as it crossed threads, its bytes decoded (threads/messages.ts). */
export function texts(result: Omit<ReadResult, 'json'> & { json: Buffer | string }): ReadTexts {
  const text = result.json.toString();
  const bodies: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      bodies.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (text.length > 0) bodies.push(text.slice(start));
  if (bodies.length !== result.count) throw new Error(`the read reports ${result.count} messages, its bytes hold ${bodies.length}: ${text}`);
  return { time: result.time, bodies, missed: result.missed };
}

export async function readTexts(engine: Pick<Engine, 'read'>, channel: string, since: number, limits: ReadLimits): Promise<ReadTexts> {
  return texts(await engine.read(channel, since, limits));
}
