/**
 * The per-client limits' parts (src/limits/): addresses and CIDRs, the
 * X-Forwarded-For rule, the shared table's token bucket (with the time
 * given, so refills are exact), its reuse of idle entries and what it does
 * when full, one budget for two threads hammering the same address, and the
 * main thread's count of connections per peer from /proc/net/tcp.
 */
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { type AddressWords, clientFromForwarded, formatAddress, inCidrs, parseAddress, parseCidrList, wordsOfBinary } from '../../src/limits/address.js';
import { connectionsByPeer } from '../../src/limits/connection-count.js';
import { createLimitBuffer, LimitTable, PROBES, UNTRACKED } from '../../src/limits/table.js';

const addr = (text: string): AddressWords => {
  const words = parseAddress(text);
  if (words === undefined) throw new Error(`not an address: ${text}`);
  return words;
};

t.test('addresses: IPv4, IPv6 and IPv4-mapped IPv6 are one key per client', async (t) => {
  t.same(addr('127.0.0.1'), [0, 0, 0xffff, 0x7f000001]);
  t.same(addr('::ffff:127.0.0.1'), addr('127.0.0.1'), 'IPv4-mapped text');
  t.same(addr('::ffff:7f00:1'), addr('127.0.0.1'), 'IPv4-mapped in hextets');
  const binary: AddressWords = [9, 9, 9, 9];
  t.ok(wordsOfBinary(new Uint8Array([192, 168, 1, 200]), binary));
  t.same(binary, addr('192.168.1.200'), '4 bytes from uWS');
  t.ok(wordsOfBinary(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 192, 168, 1, 200]), binary));
  t.same(binary, addr('192.168.1.200'), '16 bytes of an IPv4-mapped address from a dual-stack listener');
  t.notOk(wordsOfBinary(new Uint8Array(0), binary), 'no address (a closed socket)');
  t.same(addr('2001:db8::1'), [0x20010db8 | 0, 0, 0, 1]);
  t.same(addr('::'), [0, 0, 0, 0]);
  t.same(addr('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), [-1, -1, -1, -1]);
  t.equal(formatAddress(addr('10.1.2.3')), '10.1.2.3');
  t.equal(formatAddress(addr('2001:db8::1')), '2001:db8:0:0:0:0:0:1');
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.-4',
    'a.b.c.d',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '12345::',
    'g::1',
    '::1.2.3',
    'localhost',
    ' 1.2.3.4',
  ]) {
    t.equal(parseAddress(bad), undefined, `refused: ${JSON.stringify(bad)}`);
  }
});

t.test('CIDR lists: IPv4 and IPv6, bare addresses, and bad entries named', async (t) => {
  const cidrs = parseCidrList('10.0.0.0/8, 192.168.1.7, fd00::/8,2001:db8::/126');
  t.ok(inCidrs(cidrs, addr('10.255.0.1')));
  t.notOk(inCidrs(cidrs, addr('11.0.0.1')));
  t.ok(inCidrs(cidrs, addr('192.168.1.7')), 'a bare IPv4 address is a /32');
  t.notOk(inCidrs(cidrs, addr('192.168.1.8')));
  t.ok(inCidrs(cidrs, addr('fdab::1')));
  t.notOk(inCidrs(cidrs, addr('fe80::1')));
  t.ok(inCidrs(cidrs, addr('2001:db8::3')));
  t.notOk(inCidrs(cidrs, addr('2001:db8::4')));
  t.ok(inCidrs(parseCidrList('10.0.0.0/8'), addr('::ffff:10.1.1.1')), 'an IPv4 CIDR matches the IPv4-mapped form');
  t.ok(inCidrs(parseCidrList('0.0.0.0/0'), addr('8.8.8.8')), '/0 matches every IPv4 address');
  t.notOk(inCidrs(parseCidrList('0.0.0.0/0'), addr('2001:db8::1')), '...and no IPv6 one');
  t.ok(inCidrs(parseCidrList('::/0'), addr('8.8.8.8')), '::/0 matches everything');
  t.ok(inCidrs(parseCidrList('10.1.2.3/20'), addr('10.1.15.255')), 'host bits of the network are ignored');
  t.notOk(inCidrs(parseCidrList('10.1.2.3/20'), addr('10.1.16.0')));
  t.same(parseCidrList(''), []);
  for (const bad of ['10.0.0.0/33', '10.0.0.0/', '10.0.0/8', 'fd00::/129', 'x', '10.0.0.0/8,', '10.0.0.0/-1', '10.0.0.0/8/8']) {
    t.throws(() => parseCidrList(bad), /is not an IPv4 or IPv6 address or CIDR/, `refused: ${bad}`);
  }
});

t.test('X-Forwarded-For: the right-most address that is not a trusted proxy', async (t) => {
  const trusted = parseCidrList('10.0.0.0/8');
  const client = (header: string) => {
    const words = clientFromForwarded(header, trusted);
    return words === undefined ? undefined : formatAddress(words);
  };
  t.equal(client('203.0.113.5'), '203.0.113.5');
  t.equal(client('1.1.1.1, 203.0.113.5'), '203.0.113.5', 'a spoofed left-most entry is ignored');
  t.equal(client('1.1.1.1, 203.0.113.5, 10.0.0.2'), '203.0.113.5', 'trusted proxies on the right are skipped');
  t.equal(client('10.0.0.3, 10.0.0.2'), '10.0.0.3', 'only trusted proxies: the left-most');
  t.equal(client('[2001:db8::7]:4711'), '2001:db8:0:0:0:0:0:7', 'bracketed IPv6 with a port');
  t.equal(client('203.0.113.5:8080'), '203.0.113.5', 'IPv4 with a port');
  t.equal(client('garbage, 203.0.113.5'), '203.0.113.5', 'what is left of the client is never read');
  t.equal(client('203.0.113.5, garbage'), undefined, 'a malformed entry before the client: the peer is used');
  t.equal(client(''), undefined, 'no header: the peer is used');
  t.equal(client('unknown'), undefined);
});

const bucket = { rate: 2, burst: 3 };

t.test('the token bucket: a burst, then one request per 1/rate seconds, with the wait to the next token', async (t) => {
  const table = new LimitTable(createLimitBuffer(1024), bucket);
  const [a, b, c, d] = addr('198.51.100.1');
  const t0 = 1_000_000;
  for (let i = 0; i < 3; i++) t.equal(table.take(a, b, c, d, t0), 0, `burst request ${i + 1} allowed`);
  t.equal(table.take(a, b, c, d, t0), 500, 'empty: the next token in 500 ms (rate 2/s)');
  t.equal(table.take(a, b, c, d, t0 + 100), 400, 'a refused request takes nothing: 400 ms later');
  t.equal(table.take(a, b, c, d, t0 + 500), 0, 'a token after 500 ms');
  t.equal(table.take(a, b, c, d, t0 + 500), 500);
  // Many small steps lose no fraction of a token: 100 steps of 5 ms = 500 ms = one token.
  let granted = 0;
  for (let i = 1; i <= 100; i++) if (table.take(a, b, c, d, t0 + 500 + i * 5) === 0) granted++;
  t.equal(granted, 1, 'one token over 500 ms of 5 ms steps');
  t.equal(table.take(a, b, c, d, t0 + 100_000), 0, 'after a long pause...');
  t.equal(table.take(a, b, c, d, t0 + 100_000), 0);
  t.equal(table.take(a, b, c, d, t0 + 100_000), 0);
  t.equal(table.take(a, b, c, d, t0 + 100_000), 500, '...no more than the burst');
  const [e, f, g, h] = addr('198.51.100.2');
  t.equal(table.take(e, f, g, h, t0), 0, 'another address has its own bucket');
  t.equal(table.take(a, b, c, d, t0 + 99_999), 500, 'a clock read a little behind by another thread refills nothing');
});

t.test('connections: counted up to the limit, set from the count', async (t) => {
  const table = new LimitTable(createLimitBuffer(1024), { rate: 0, burst: 0 });
  const [a, b, c, d] = addr('198.51.100.3');
  t.equal(table.openConnection(a, b, c, d, 2, 0), 1);
  t.equal(table.openConnection(a, b, c, d, 2, 0), 1);
  t.equal(table.openConnection(a, b, c, d, 2, 0), 0, 'the third is refused');
  t.equal(table.connectionsOf(a, b, c, d), 2);
  t.ok(table.takeRefusedNote(), 'a refusal is noted for the main thread');
  t.notOk(table.takeRefusedNote(), '...once');
  table.setConnections(new Map([[[a, b, c, d].join(','), 1]]));
  t.equal(table.connectionsOf(a, b, c, d), 1, 'the count of open connections wins');
  t.equal(table.openConnection(a, b, c, d, 2, 0), 1, 'one more may open');
  table.setConnections(new Map());
  t.equal(table.connectionsOf(a, b, c, d), 0, 'an address not counted has none open');
});

t.test('a full table lets new addresses through untracked; idle entries are reused', async (t) => {
  const size = 64;
  const table = new LimitTable(createLimitBuffer(size), { rate: 1, burst: 1 });
  const now = 5_000;
  let tracked = 0;
  let untracked = 0;
  for (let i = 0; i < size * 2; i++) {
    const result = table.take(0, 0, 0xffff, 0x0a000000 + i, now);
    if (result === UNTRACKED) untracked++;
    else {
      t.equal(result, 0, 'a new address has a full bucket');
      tracked++;
    }
  }
  // Each address probes PROBES entries from its hash: most entries are used before addresses go untracked.
  t.ok(tracked <= size && tracked >= size / 2, `${tracked} of ${size} entries used (probing ${PROBES})`);
  t.equal(untracked, size * 2 - tracked);
  t.equal(table.take(0, 0, 0xffff, 0x0a000000, now), 1000, 'a tracked address keeps its empty bucket while the table is full');
  // A second later every bucket is full again and no address holds a connection: all idle.
  t.equal(table.take(0, 0, 0xffff, 0x0b000000, now + 1000), 0, 'a new address takes over an idle entry');
  t.equal(table.take(0, 0, 0xffff, 0x0b000000, now + 1000), 1000, '...and is limited from then on');
  const busy = new LimitTable(createLimitBuffer(size), { rate: 0, burst: 0 });
  let refusedOne = false;
  for (let i = 0; i < size * 4; i++) if (busy.openConnection(0, 0, 0xffff, 0x0c000000 + i, 10, 0) === UNTRACKED) refusedOne = true;
  t.ok(refusedOne, 'some addresses went untracked');
  for (let i = 0; i < size; i++) {
    t.equal(busy.openConnection(0, 0, 0xffff, 0x0d000000 + i, 10, 1e9), UNTRACKED, 'entries with connections open are never taken over, however old');
  }
});

t.test('two threads share one budget: the burst is granted once in all', async (t) => {
  const buffer = createLimitBuffer(1024);
  const ready = new SharedArrayBuffer(4);
  const burst = 5000;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.module).then(({ LimitTable }) => {
      // Both threads start together.
      const ready = new Int32Array(workerData.ready);
      Atomics.add(ready, 0, 1);
      while (Atomics.load(ready, 0) < 2) {}
      const table = new LimitTable(workerData.buffer, { rate: 1, burst: ${burst} });
      let granted = 0;
      // 20 addresses, the first of them hot: inserts and takes race between the threads.
      for (let i = 0; i < 40000; i++) if (table.take(0, 0, 0xffff, i % 2 === 0 ? 7 : 7 + (i % 20), workerData.now) === 0 && i % 2 === 0) granted++;
      parentPort.postMessage(granted);
    });`;
  // The built module: a worker thread does not get tap's TypeScript loader.
  const module = new URL('../../dist/limits/table.js', import.meta.url).href;
  const now = performance.timeOrigin + performance.now();
  const run = () =>
    new Promise<number>((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: { buffer, ready, module, now } });
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  const granted = await Promise.all([run(), run()]);
  t.equal(granted[0]! + granted[1]!, burst, `granted ${granted.join(' + ')}: exactly the burst`);
});

t.test('the main thread counts established connections per peer from /proc/net/tcp', async (t) => {
  const server = net.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const open = (localAddress: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(socket));
      socket.once('error', reject);
    });
  const sockets = await Promise.all([open('127.0.0.2'), open('127.0.0.2'), open('127.0.0.3')]);
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  const counts = connectionsByPeer(port);
  t.ok(counts, '/proc/net/tcp is readable here');
  t.equal(counts!.get(addr('127.0.0.2').join(',')), 2);
  t.equal(counts!.get(addr('127.0.0.3').join(',')), 1);
  t.equal(counts!.size, 2, 'the outgoing side of the same connections is not counted');
});
