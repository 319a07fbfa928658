// The chat page (/chat): one room, topic `chat:lobby`, through pushwire.js.
//   #messages  one <li data-offset data-epoch> per message, in the order delivered
//   #members   who is here (presence), one <li data-client> each
//   #status    the connection: data-state (connecting/open/closed) and data-transport
//   #log       what happened to the connection (open, reconnecting, recovered, lost, errors)
// Query parameters: ?name=alice (the name to use), ?transport=sse or ?transport=poll,websocket
// (the transports to try, in order; default: WebSocket, then SSE, then long-polling).
'use strict';
(function () {
  const TOPIC = 'chat:lobby';
  const MAX_LOG_LINES = 50;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const name = $('name');
  const text = $('text');
  const statusLine = $('status');
  const messages = $('messages');
  const members = $('members');
  const log = $('log');

  name.value = params.get('name') || localStorage.getItem('pushwire-chat-name') || 'guest-' + Math.floor(Math.random() * 10000);

  const transports = params.get('transport') ? params.get('transport').split(',') : undefined;
  const client = pushwire.connect(location.origin, { transports });

  function note(line) {
    const li = document.createElement('li');
    li.textContent = line;
    log.appendChild(li);
    while (log.children.length > MAX_LOG_LINES) log.removeChild(log.firstChild);
  }

  // --- messages -------------------------------------------------------------------------
  function show(message) {
    const data = message.data && typeof message.data === 'object' ? message.data : { text: String(message.data) };
    const li = document.createElement('li');
    li.dataset.offset = String(message.offset);
    li.dataset.epoch = message.epoch;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = data.name ? String(data.name) : '(api)';
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = String(data.text ?? '');
    const at = document.createElement('span');
    at.className = 'at';
    at.textContent = '#' + message.offset;
    li.append(who, body, at);
    messages.appendChild(li);
  }

  // --- presence -------------------------------------------------------------------------
  const present = new Map(); // client id -> info
  function renderMembers() {
    members.textContent = '';
    for (const [id, info] of present) {
      const li = document.createElement('li');
      li.dataset.client = id;
      li.textContent = (info && info.name ? info.name : id) + (id === client.id ? ' (you)' : '');
      members.appendChild(li);
    }
  }
  client.on('join', (e) => { if (e.topic === TOPIC) { present.set(e.client, e.info); renderMembers(); } });
  client.on('leave', (e) => { if (e.topic === TOPIC) { present.delete(e.client); renderMembers(); } });
  async function loadMembers() {
    try {
      const list = await client.presence(TOPIC);
      present.clear();
      for (const m of list) present.set(m.client, m.info);
      renderMembers();
    } catch (err) {
      note('Presence: ' + err.message);
    }
  }

  // --- subscription (again when the name changes, so presence shows the new one) --------
  let sub = null;
  function join() {
    const since = sub ? sub.position : undefined;
    if (sub) sub.unsubscribe();
    sub = client.subscribe(TOPIC, show, { since: since || undefined, info: { name: name.value } });
    sub.ready.then((r) => note(`Subscribed to ${TOPIC} at ${r.epoch}:${r.offset}`), () => {});
    if (client.state === 'open' && client.transport === 'websocket') loadMembers();
  }
  join();
  name.addEventListener('change', () => {
    localStorage.setItem('pushwire-chat-name', name.value);
    join();
  });

  // --- connection -----------------------------------------------------------------------
  client.on('state', (s) => {
    statusLine.dataset.state = s.state;
    statusLine.dataset.transport = s.transport || '';
    if (s.state === 'open') {
      statusLine.textContent = 'connected over ' + s.transport;
      note('Open: ' + s.transport);
      if (s.transport === 'websocket') loadMembers(); // sent after the re-subscription
      else { present.clear(); renderMembers(); }
    } else if (s.retryIn !== undefined) {
      statusLine.textContent = 'reconnecting in ' + (s.retryIn / 1000).toFixed(1) + ' s…';
      note(`Reconnecting in ${(s.retryIn / 1000).toFixed(1)} s (${s.reason})`);
    } else if (s.state === 'connecting') {
      statusLine.textContent = 'connecting over ' + s.transport + '…';
    } else {
      statusLine.textContent = s.state;
    }
  });
  client.on('recovered', (e) => note(`Recovered ${e.topic} from ${e.since.offset} (now at ${e.offset})`));
  client.on('lost', (e) => {
    const from = e.since ? `${e.since.epoch}:${e.since.offset}` : 'the start';
    note(`Lost messages on ${e.topic} after ${from}; continuing after ${e.epoch}:${e.offset}`);
  });
  client.on('error', (err) => note('Error: ' + (err && err.message)));

  // --- sending --------------------------------------------------------------------------
  $('chat').addEventListener('submit', (event) => {
    event.preventDefault();
    const line = text.value.trim();
    if (!line) return;
    text.value = '';
    client.publish(TOPIC, { name: name.value, text: line }).catch((err) => {
      note('Not sent: ' + err.message);
      if (!text.value) text.value = line;
    });
  });

  window.chat = { client, get subscription() { return sub; } }; // for the console and the tests
})();
