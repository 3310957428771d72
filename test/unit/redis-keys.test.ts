/**
 * Redis key names of a channel (src/engine/redis/keys.ts): the hash tag is the
 * channel id with `%` and `}` percent-encoded, so that two channels never
 * share keys (the encoding is one-to-one) and every key of one channel lands
 * in the same Redis Cluster slot (the tag is the whole channel id, never cut
 * short by a `}` inside it). Slots are computed with cluster-key-slot, the
 * same implementation of Redis's CRC16 hash-tag rule that the server uses.
 */
import t from 'tap';
import calculateSlot from 'cluster-key-slot';
import { channelKeys } from '../../src/engine/redis/keys.js';

const PREFIX = 'comet:';

/** The hash tag of a key as Redis reads it: between the first `{` and the first `}` after it. */
function tagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

/** The inverse of the tag encoding: %7D -> }, %25 -> % (and nothing else is touched). */
function decodeTag(tag: string): string {
  return tag.replace(/%7D|%25/g, (m) => (m === '%7D' ? '}' : '%'));
}

/** A deterministic pseudo-random generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Channel ids full of the characters that matter: the escapes' own characters, braces, and a few others. */
function randomChannel(next: () => number): string {
  const alphabet = ['%', '}', '{', '7', 'D', '2', '5', 'a', ':', ' ', 'é', '😀', '%7D', '%25'];
  const len = 1 + Math.floor(next() * 8);
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[Math.floor(next() * alphabet.length)];
  return s;
}

t.test('key layout: prefix, tag, suffixes', async (t) => {
  t.strictSame(channelKeys(PREFIX, 'news'), { stream: 'comet:{news}:s', meta: 'comet:{news}:m', notify: 'comet:{news}:n' });
  t.strictSame(channelKeys('', 'x'), { stream: '{x}:s', meta: '{x}:m', notify: '{x}:n' }, 'an empty prefix');
  t.strictSame(channelKeys('app1:', 'x').stream, 'app1:{x}:s', 'another prefix');
});

t.test('escaping: % and } are percent-encoded, everything else is kept', async (t) => {
  t.equal(channelKeys(PREFIX, 'a}b').stream, 'comet:{a%7Db}:s');
  t.equal(channelKeys(PREFIX, 'a%b').stream, 'comet:{a%25b}:s');
  t.equal(channelKeys(PREFIX, '}').stream, 'comet:{%7D}:s');
  t.equal(channelKeys(PREFIX, '%7D').stream, 'comet:{%257D}:s', 'an id that looks like an escape is escaped itself');
  t.equal(channelKeys(PREFIX, 'a{b').stream, 'comet:{a{b}:s', 'an opening brace needs no escape: the tag starts at the first one');
  t.equal(channelKeys(PREFIX, 'é 😀:x').stream, 'comet:{é 😀:x}:s', 'non-ASCII and separators are kept');
});

t.test('the tag Redis reads is the whole (escaped) channel id, for every key', async (t) => {
  for (const channel of ['news', 'a}b', '}}}', '{', '{}', 'a{b}c', '%', '%7D', '}%', 'x:y', 'é😀']) {
    const keys = channelKeys(PREFIX, channel);
    for (const [name, key] of Object.entries(keys)) {
      t.equal(decodeTag(tagOf(key) ?? '<none>'), channel, `${JSON.stringify(channel)} ${name}: tag decodes back to the id`);
    }
  }
});

t.test('one-to-one: distinct channels never share a key (exhaustive over short ids, then random)', async (t) => {
  // Every id of length 1..4 over the characters that could collide under a sloppy encoding.
  const alphabet = ['%', '}', '7', 'D', '2', '5'];
  const ids: string[] = [''];
  let frontier = [''];
  for (let len = 1; len <= 4; len++) {
    frontier = frontier.flatMap((p) => alphabet.map((c) => p + c));
    ids.push(...frontier);
  }
  ids.shift();
  const next = rng(20240601);
  for (let i = 0; i < 20000; i++) ids.push(randomChannel(next));
  const byStream = new Map<string, string>();
  let collisions = 0;
  let badDecode = 0;
  for (const id of ids) {
    const { stream } = channelKeys(PREFIX, id);
    const other = byStream.get(stream);
    if (other !== undefined && other !== id) {
      collisions++;
      if (collisions < 5) t.fail('two channels share a stream key', { a: other, b: id, stream });
    }
    byStream.set(stream, id);
    if (decodeTag(tagOf(stream) ?? '') !== id) badDecode++;
  }
  t.equal(collisions, 0, `no two of ${byStream.size} distinct ids share a key`);
  t.equal(badDecode, 0, 'every tag decodes back to its id');
  t.ok(byStream.size > 5000, 'the sample is large', { size: byStream.size });
});

t.test('all keys of one channel share one cluster slot: the slot of the channel id as tag', async (t) => {
  const next = rng(7);
  const samples = ['news', 'a}b', '}', '{x}', 'a{b}c', '%7D', ...Array.from({ length: 2000 }, () => randomChannel(next))];
  let split = 0;
  let wrongSlot = 0;
  for (const channel of samples) {
    const { stream, meta, notify } = channelKeys(PREFIX, channel);
    const slots = [calculateSlot(stream), calculateSlot(meta), calculateSlot(notify)];
    if (new Set(slots).size !== 1) {
      split++;
      if (split < 5) t.fail('keys of one channel in different slots', { channel, stream, meta, notify, slots });
    }
    // The escaped id itself (with no braces left that could start another tag) hashes to the same slot.
    const tag = tagOf(stream);
    if (tag === undefined || (!tag.includes('{') && calculateSlot(tag) !== slots[0])) wrongSlot++;
    // And the prefix plays no part in the slot.
    if (calculateSlot(channelKeys('other-app:', channel).notify) !== slots[0]) wrongSlot++;
  }
  t.equal(split, 0, `${samples.length} channels: stream, meta and notify share a slot`);
  t.equal(wrongSlot, 0, 'the slot is that of the tag, whatever the prefix');
  t.equal(calculateSlot.generateMulti(Object.values(channelKeys(PREFIX, 'a}b'))), calculateSlot(channelKeys(PREFIX, 'a}b').stream), 'generateMulti agrees');
});

t.test('channels spread over the slots (the tag is not constant)', async (t) => {
  const slots = new Set(Array.from({ length: 200 }, (_, i) => calculateSlot(channelKeys(PREFIX, `ch-${i}`).stream)));
  t.ok(slots.size > 150, '200 channels land in many distinct slots', { distinct: slots.size });
});
