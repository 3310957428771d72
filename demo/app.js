// The chat demo: everything it says to the server goes through the client
// library (createClient, subscribe, publish); this file holds no protocol code.
// ?room=NAME picks the channel. It talks over a WebSocket when the browser has
// one and it connects, else over long-polling (fetch); ?transport=jsonp, fetch,
// events or websocket forces one. With access control on, #token=JWT (or
// ?token=JWT) is the token it sends.
import { createClient } from './client/index.js';

const params = new URLSearchParams(location.search);
// The fragment first: a browser never sends it to a server, so the token stays
// out of access logs and proxies' logs, and out of the Referer of links.
const token = new URLSearchParams(location.hash.slice(1)).get('token') || params.get('token') || undefined;
const LABELS = { websocket: 'WebSocket', events: 'events', fetch: 'fetch', jsonp: 'JSONP' };
const forced = Object.hasOwn(LABELS, params.get('transport')) ? params.get('transport') : undefined;
const room = params.get('room') || 'lobby';
const channel = `demo-chat:${room}`;
const endpoint = new URL(document.querySelector('meta[name="comet-path"]').content, location.href).href;

const $ = (id) => document.getElementById(id);
const list = $('messages');

$('room').textContent = `#${room}`;

const savedName = localStorage.getItem('comet-demo-name');
$('name').value = savedName || `guest-${Math.floor(Math.random() * 900 + 100)}`;

function append(item) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(item);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  append(li);
}

function show(raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    msg = null;
  }
  const li = document.createElement('li');
  li.className = 'message';
  const name = document.createElement('span');
  name.className = 'name';
  const text = document.createElement('span');
  text.className = 'text';
  if (msg && typeof msg === 'object' && typeof msg.text === 'string') {
    name.textContent = String(msg.name || 'anonymous');
    text.textContent = msg.text;
  } else {
    name.textContent = '(raw)';
    text.textContent = raw;
  }
  li.append(name, text);
  if (msg && typeof msg.at === 'number') {
    const at = document.createElement('span');
    at.className = 'at';
    at.textContent = new Date(msg.at).toLocaleTimeString();
    li.append(at);
  }
  append(li);
}

/** Says which transport is in use, with links to force each of the others. */
function showTransport(transport) {
  $('transport').textContent = LABELS[transport];
  document.documentElement.dataset.transport = transport;
  const links = Object.keys(LABELS)
    .filter((other) => other !== transport)
    .map((other) => {
      const a = document.createElement('a');
      const url = new URL(location.href);
      url.searchParams.set('transport', other);
      a.href = url.href;
      a.textContent = LABELS[other];
      return a;
    });
  $('switch').replaceChildren('switch to ', ...links.flatMap((a, i) => (i === 0 ? [a] : [', ', a])));
}

/**
 * A WebSocket client when the browser has WebSocket and one connects (a sync
 * over it answers), else long-polling: a proxy on the way may not pass
 * WebSocket upgrades. A refusal (a token) is not a connection problem: the
 * WebSocket client stays, and the subscription reports it.
 */
async function pickClient() {
  if (forced) return [createClient({ url: endpoint, transport: forced, token }), forced];
  if (typeof WebSocket === 'function') {
    const socket = createClient({ url: endpoint, transport: 'websocket', token });
    try {
      await socket.sync(channel, { signal: AbortSignal.timeout(5000) });
      return [socket, 'websocket'];
    } catch (err) {
      if (err.retryable === false) return [socket, 'websocket'];
      note(`WebSocket could not connect (${err.message}): long-polling instead.`);
    }
  }
  return [createClient({ url: endpoint, transport: 'fetch', token }), 'fetch'];
}

let client;
let first = true;
// Subscribed once the page has loaded: a long-poll <script> (JSONP) inserted
// earlier would hold the page's load event, and its spinner, until it answers.
const subscribe = async () => {
  const [picked, transport] = await pickClient();
  client = picked;
  showTransport(transport);
  client.subscribe(
    channel,
    (messages, info) => {
      // The first answer from time 0 always says "missed": the server cannot
      // vouch for what came before it started. Later, it means messages were lost.
      if (info.missed && !first) note('Some messages were missed (the server dropped them).');
      first = false;
      $('status').textContent = '';
      for (const m of messages) show(m);
    },
    {
      time: 0,
      onError: (err) => {
        // A refusal (a missing, expired or too narrow token) ends the subscription: saying "retrying" would be false.
        $('status').textContent = err.retryable ? `Connection problem, retrying: ${err.message}` : `Refused by the server: ${err.message}`;
      },
    },
  );
};
if (document.readyState === 'complete') void subscribe();
else addEventListener('load', () => void subscribe(), { once: true });

$('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = $('name').value.trim() || 'anonymous';
  const text = $('text').value;
  if (text.trim() === '' || client === undefined) return;
  localStorage.setItem('comet-demo-name', name);
  $('send').disabled = true;
  try {
    await client.publish(channel, JSON.stringify({ name, text, at: Date.now() }));
    $('text').value = '';
    $('status').textContent = '';
  } catch (err) {
    $('status').textContent = `Not sent: ${err.message}`;
  } finally {
    $('send').disabled = false;
    $('text').focus();
  }
});
