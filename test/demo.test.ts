/**
 * The live demo (--demo on): its files as served, then the chat room in real
 * headless Chromium (Debian's chromium, driven by playwright-core): two tabs
 * on one room see each other's messages through the server, over each
 * transport (fetch, JSONP, events, WebSocket: the one picked by default, and
 * fetch when a WebSocket cannot connect), each run checked to have used the
 * transport it claims from the page's own network requests and WebSocket
 * frames; then with access control on (--auth all), the token taken from the
 * page's #token= fragment. A screenshot of a room with a few
 * messages goes to the testdir (and to $DEMO_SCREENSHOT when set: `npm run
 * demo:screenshot` regenerates docs/demo.png that way).
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { mintToken } from '../src/cli/token.js';
import { chromiumAvailable, launchBrowser } from './helpers/browser.js';
import { freePort } from './helpers/redis.js';
import { ROOT, startServer, waitFor } from './helpers/server.js';

t.test('demo files: served from memory with their types, no-cache, 404 for anything else', async (t) => {
  const srv = await startServer({ t, args: ['--demo', 'on'] });
  const index = await srv.request({ path: '/demo/' });
  t.equal(index.status, 200);
  t.match(index.headers['content-type'], /^text\/html; charset=utf-8/);
  t.equal(index.headers['cache-control'], 'no-cache');
  t.match(index.body, /<meta name="comet-path" content="\/">/, 'the endpoint path is filled in');
  t.match(index.body, /src="app\.js"/);
  t.equal((await srv.request({ path: '/demo/index.html' })).body, index.body);
  const app = await srv.request({ path: '/demo/app.js' });
  t.equal(app.status, 200);
  t.match(app.headers['content-type'], /^text\/javascript; charset=utf-8/);
  t.match(app.body, /from '\.\/client\/index\.js'/);
  const client = await srv.request({ path: '/demo/client/index.js' });
  t.equal(client.status, 200);
  t.match(client.headers['content-type'], /^text\/javascript/);
  t.match(client.body, /export function createClient/);
  t.equal(client.headers['cache-control'], 'no-cache');
  const head = await srv.request({ method: 'HEAD', path: '/demo/app.js' });
  t.equal(head.status, 200);
  t.equal(head.body, '');
  t.equal(head.headers['content-type'], app.headers['content-type'], 'HEAD: the headers a GET would carry, no body');
  for (const p of ['/demo/nope.js', '/demo/client/', '/demo/client/index.js.map', '/demo/../package.json', '/demo/client/../../package.json']) {
    const res = await srv.request({ path: p });
    t.equal(res.status, 404, `${p} is not found`);
  }
  const bare = await srv.request({ path: '/demo' });
  t.equal(bare.status, 301);
  t.equal(bare.headers.location, '/demo/');
  const post = await srv.request({ method: 'POST', path: '/demo/', body: 'x' });
  t.equal(post.status, 405);
  t.equal((await srv.request({ path: '/', query: { method: 'sync', channel: 'c' } })).status, 200, 'the protocol still answers');

  const off = await startServer({ t });
  t.equal((await off.request({ path: '/demo/' })).status, 404, 'without --demo there is no demo');

  const moved = await startServer({ t, args: ['--demo', 'on', '--path', '/comet'] });
  t.match((await moved.request({ path: '/demo/' })).body, /<meta name="comet-path" content="\/comet">/, 'the page follows --path');
});

interface Seen {
  url: URL;
  type: string;
  authorization: string | undefined;
}

type Transport = 'fetch' | 'jsonp' | 'events' | 'websocket';

interface Room {
  page: Page;
  requests: Seen[];
  /** The request frames the page sent over its WebSockets. */
  frames: Array<Record<string, unknown>>;
  sockets: number;
  errors: string[];
}

/** Whether a tab has subscribed, from what it sent: a get (fetch, JSONP), an event stream, or a subscribe frame. */
const subscribedOver = (room: Room, transport: Transport): boolean =>
  transport === 'websocket'
    ? room.frames.some((f) => f.method === 'subscribe')
    : room.requests.some((r) => r.url.searchParams.get('method') === (transport === 'events' ? 'events' : 'get'));

/** A tab on the room, recording the protocol requests and WebSocket frames it sends and any script error. */
async function openRoom(t: Test, context: BrowserContext, url: string, transport: Transport, setup?: (page: Page) => Promise<void>): Promise<Room> {
  const page = await context.newPage();
  await setup?.(page);
  page.setDefaultTimeout(5000);
  const room: Room = { page, requests: [], frames: [], sockets: 0, errors: [] };
  const { requests, errors } = room;
  page.on('websocket', (ws) => {
    room.sockets++;
    ws.on('framesent', (f) => room.frames.push(JSON.parse(String(f.payload))));
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname !== '/') return;
    // A put over fetch may carry its parameters in a form body: they count as the query here.
    for (const [k, v] of new URLSearchParams(r.postData() ?? '')) u.searchParams.set(k, v);
    requests.push({ url: u, type: r.resourceType(), authorization: r.headers().authorization });
  });
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  t.teardown(() => page.close().catch(() => {}));
  await page.goto(url, { timeout: 10000 });
  // Subscribed: its first get, stream or subscribe has left (the page reads the
  // room from time 0, so a message sent before it is answered is shown all the same).
  await waitFor(() => subscribedOver(room, transport), { timeoutMs: 5000, what: `a subscription over ${transport} from ${url}` });
  return room;
}

async function send(page: Page, name: string, text: string): Promise<void> {
  await page.fill('#name', name);
  await page.fill('#text', text);
  await page.click('#send');
}

async function waitForMessage(page: Page, name: string, text: string): Promise<void> {
  await page.locator('#messages li.message', { hasText: text }).filter({ hasText: name }).waitFor({ timeout: 5000 });
}

const messagesOf = (page: Page) =>
  page.$$eval('#messages li.message', (lis) => lis.map((li) => `${li.querySelector('.name')?.textContent}: ${li.querySelector('.text')?.textContent}`));

const LABELS: Record<Transport, string> = { fetch: 'fetch', jsonp: 'JSONP', events: 'events', websocket: 'WebSocket' };

/** How a page gets each transport: forced by ?transport=, picked by default, or fetch when its WebSockets cannot connect. */
const CASES: Array<{ name: string; query: string; transport: Transport; socketsFail?: boolean; screenshot?: boolean }> = [
  { name: 'fetch', query: '&transport=fetch', transport: 'fetch' },
  { name: 'jsonp', query: '&transport=jsonp', transport: 'jsonp' },
  { name: 'events', query: '&transport=events', transport: 'events' },
  { name: 'websocket', query: '&transport=websocket', transport: 'websocket' },
  { name: 'by default: WebSocket', query: '', transport: 'websocket', screenshot: true },
  { name: 'by default, when a WebSocket cannot connect: fetch', query: '', transport: 'fetch', socketsFail: true },
];

/**
 * Makes the page's WebSockets connect to a port where nothing listens: a
 * real failed connection, as behind a proxy that does not pass upgrades.
 */
async function socketsFail(page: Page): Promise<void> {
  const port = await freePort();
  await page.addInitScript((deadPort) => {
    const Real = WebSocket;
    globalThis.WebSocket = class extends Real {
      constructor(url: string | URL, protocols?: string | string[]) {
        const dead = new URL(url);
        dead.port = String(deadPort);
        super(dead, protocols);
      }
    };
  }, port);
}

t.test('chat in headless Chromium: two tabs see each other, over every transport', async (t) => {
  if (!chromiumAvailable(t)) return;
  const srv = await startServer({ t, threads: 2, args: ['--demo', 'on'] });
  const browser = await launchBrowser(t);

  for (const [index, { name, query, transport, socketsFail: failing, screenshot }] of CASES.entries()) {
    await t.test(name, async (t) => {
      const url = `${srv.url}/demo/?room=${screenshot ? 'lobby' : `room-${index}`}${query}`;
      const a = await openRoom(t, browser, url, transport, failing ? socketsFail : undefined);
      const b = await openRoom(t, browser, url, transport, failing ? socketsFail : undefined);
      t.equal(await a.page.textContent('#transport'), LABELS[transport], 'the page says which transport it uses');

      await send(a.page, 'alice', `hello from A over ${transport}`);
      await waitForMessage(b.page, 'alice', `hello from A over ${transport}`);
      await send(b.page, 'bob', `and hello back from B`);
      await waitForMessage(a.page, 'bob', 'and hello back from B');
      await send(a.page, 'alice', 'Each tab holds a subscription open for the next message.');
      await send(b.page, 'bob', '<b>no markup</b> is ever interpreted');
      for (const p of [a.page, b.page]) await waitForMessage(p, 'bob', '<b>no markup</b> is ever interpreted');
      const expected = [
        `alice: hello from A over ${transport}`,
        'bob: and hello back from B',
        'alice: Each tab holds a subscription open for the next message.',
        'bob: <b>no markup</b> is ever interpreted',
      ];
      t.same(await messagesOf(a.page), expected, 'tab A shows every message once, in order');
      t.same(await messagesOf(b.page), expected, 'tab B shows every message once, in order');
      t.equal(await b.page.locator('#messages b').count(), 0, 'a message is text, not HTML');

      const all = [...a.requests, ...b.requests];
      const frames = [...a.frames, ...b.frames];
      const methods = (m: string) => all.filter((r) => r.url.searchParams.get('method') === m);
      if (transport === 'websocket') {
        t.equal(all.length, 0, 'no HTTP request to the protocol endpoint');
        t.equal(a.sockets + b.sockets, 2, 'one WebSocket per tab');
        t.equal(frames.filter((f) => f.method === 'put').length, 4, '4 puts over the WebSockets');
        t.ok(
          frames.some((f) => f.method === 'subscribe'),
          'subscribed over them',
        );
      } else {
        t.equal(methods('put').length, 4, '4 puts over HTTP');
        t.strictSame(frames, [], 'no WebSocket frame');
        if (transport === 'events') {
          t.ok(methods('events').length >= 2 && methods('get').length === 0, `an event stream per tab, no get (${all.length} requests)`);
        } else {
          t.ok(methods('get').length >= 4, `gets seen (${all.length} requests)`);
        }
      }
      if (transport === 'jsonp') {
        t.ok(
          all.every((r) => r.type === 'script' && /^[\w.$]+$/.test(r.url.searchParams.get('callback') ?? '')),
          'every protocol request was a <script> with callback=',
        );
      } else {
        t.ok(
          all.every((r) => r.type === 'fetch' && !r.url.searchParams.has('callback')),
          'every protocol request was a fetch, without callback=',
        );
      }
      if (failing) {
        t.ok(a.sockets >= 1 && b.sockets >= 1, 'each tab tried a WebSocket first');
        t.equal(await a.page.locator('#messages li.note', { hasText: 'WebSocket could not connect' }).count(), 1, 'the page says it fell back');
      }
      // The browser itself logs the failed WebSocket connection: that one is expected when it fails.
      const browserSaid = (e: string) => failing === true && /^WebSocket connection to '.*' failed/.test(e);
      t.same(
        [...a.errors, ...b.errors].filter((e) => !browserSaid(e)),
        [],
        'no script errors',
      );

      if (screenshot) {
        await send(b.page, 'bob', 'Open this page in two tabs and chat!');
        await waitForMessage(a.page, 'bob', 'Open this page in two tabs and chat');
        await a.page.fill('#name', 'alice');
        await a.page.fill('#text', 'typing…');
        const shot = path.join(t.testdir(), 'demo.png');
        await a.page.screenshot({ path: shot, timeout: 5000 });
        t.pass('screenshot taken');
        const keep = process.env.DEMO_SCREENSHOT;
        if (keep) {
          const target = path.resolve(ROOT, keep);
          mkdirSync(path.dirname(target), { recursive: true });
          copyFileSync(shot, target);
          t.comment(`screenshot copied to ${target}`);
        }
      }
    });
  }
});

t.test(
  'chat with --auth all: the token from the #token= fragment, over fetch and events (Authorization), JSONP (token=) and WebSocket (in each frame)',
  async (t) => {
    if (!chromiumAvailable(t)) return;
    const secret = 'demo-auth-secret';
    const srv = await startServer({ t, args: ['--demo', 'on', '--auth', 'all', '--auth-secret', secret] });
    const browser = await launchBrowser(t);
    const token = mintToken({ secret, channels: ['demo-chat:*'], ttl: 600 });

    for (const transport of ['fetch', 'jsonp', 'events', 'websocket'] as const) {
      await t.test(transport, async (t) => {
        const url = `${srv.url}/demo/?room=auth-${transport}&transport=${transport}#token=${token}`;
        const a = await openRoom(t, browser, url, transport);
        const b = await openRoom(t, browser, url, transport);
        await send(a.page, 'alice', `token over ${transport}`);
        await waitForMessage(b.page, 'alice', `token over ${transport}`);
        await send(b.page, 'bob', 'accepted');
        await waitForMessage(a.page, 'bob', 'accepted');
        const all = [...a.requests, ...b.requests];
        const frames = [...a.frames, ...b.frames];
        t.ok(all.some((r) => r.url.searchParams.get('method') === 'put') || frames.some((f) => f.method === 'put'), 'puts were sent');
        if (transport === 'websocket') {
          t.ok(frames.length > 0 && frames.every((f) => f.token === token), 'every frame carried the token');
        } else if (transport !== 'jsonp') {
          t.ok(
            all.every((r) => r.authorization === `Bearer ${token}` && !r.url.searchParams.has('token')),
            'every request carried the token as Authorization: Bearer, not in the URL',
          );
        } else {
          t.ok(
            all.every((r) => r.type === 'script' && r.url.searchParams.get('token') === token),
            'every <script> request carried the token as token=',
          );
        }
        t.same([...a.errors, ...b.errors], [], 'no script errors');
      });
    }

    await t.test('without a token the page says it was refused', async (t) => {
      const page = await browser.newPage();
      t.teardown(() => page.close().catch(() => {}));
      await page.goto(`${srv.url}/demo/?room=auth-none`, { timeout: 10000 });
      await page.locator('#status', { hasText: 'Refused by the server' }).waitFor({ timeout: 5000 });
      t.pass('refused, not retrying');
    });

    await t.test('the client over JSONP with a token function: a failed request calls it again (JSONP cannot see the 401)', async (t) => {
      const page = await browser.newPage();
      t.teardown(() => page.close().catch(() => {}));
      await page.goto(`${srv.url}/demo/?room=auth-fn#token=${token}`, { timeout: 10000 });
      const bad = mintToken({ secret: 'wrong', channels: ['*'], ttl: 600 });
      const outcome = await page.evaluate(
        async ({ bad, good }) => {
          // The library as the page has it: a variable, or TypeScript would look for the path on disk.
          const library = '/demo/client/index.js';
          const { createClient } = await import(library);
          let calls = 0;
          const client = createClient({ url: new URL('/', location.href).href, transport: 'jsonp', token: async () => (calls++ === 0 ? bad : good) });
          const first = await client.publish('demo-chat:auth-fn', 'refused').then(
            () => 'accepted',
            (err: { name: string }) => err.name,
          );
          const time = await client.publish('demo-chat:auth-fn', 'with the new token');
          return { first, time, calls };
        },
        { bad, good: token },
      );
      t.equal(outcome.first, 'CometNetworkError', 'the refused JSONP put fails as a network error');
      t.equal(outcome.calls, 2, 'the function was called again for the next request');
      t.ok(Number.isSafeInteger(outcome.time), 'which the server accepted');
      const reader = mintToken({ secret, channels: ['*'], ttl: 60 });
      t.strictSame(
        (await srv.get('demo-chat:auth-fn', { time: 0, timeout: 0, token: reader })).messages,
        ['with the new token'],
        'only the second put was stored',
      );
    });
  },
);
