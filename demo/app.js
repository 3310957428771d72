// The chat demo: everything it says to the server goes through the client
// library (createClient, subscribe, publish); this file holds no protocol code.
// ?room=NAME picks the channel, ?transport=jsonp selects JSONP (default fetch).
// With access control on, #token=JWT (or ?token=JWT) is the token it sends.
import { createClient } from './client/index.js';

const params = new URLSearchParams(location.search);
// The fragment first: a browser never sends it to a server, so the token stays
// out of access logs and proxies' logs, and out of the Referer of links.
const token = new URLSearchParams(location.hash.slice(1)).get('token') || params.get('token') || undefined;
const transport = params.get('transport') === 'jsonp' ? 'jsonp' : 'fetch';
const room = params.get('room') || 'lobby';
const channel = `demo-chat:${room}`;
const endpoint = new URL(document.querySelector('meta[name="comet-path"]').content, location.href).href;

const $ = (id) => document.getElementById(id);
const list = $('messages');

$('room').textContent = `#${room}`;
$('transport').textContent = transport === 'jsonp' ? 'JSONP' : 'fetch';
const other = new URL(location.href);
other.searchParams.set('transport', transport === 'jsonp' ? 'fetch' : 'jsonp');
$('switch').href = other.href;
$('switch').textContent = `switch to ${transport === 'jsonp' ? 'fetch' : 'JSONP'}`;
document.documentElement.dataset.transport = transport;

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

const client = createClient({ url: endpoint, transport, token });
let first = true;
// Subscribed once the page has loaded: a long-poll <script> (JSONP) inserted
// earlier would hold the page's load event, and its spinner, until it answers.
const subscribe = () =>
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
if (document.readyState === 'complete') subscribe();
else addEventListener('load', subscribe, { once: true });

$('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = $('name').value.trim() || 'anonymous';
  const text = $('text').value;
  if (text.trim() === '') return;
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
