// The admin page (/admin): log in with the admin password, then show the snapshots the
// node publishes every second on the system topic $sys/admin (docs/operations.md, "Admin page").
//
//   1. POST /admin/token {"password": …} answers a token valid 5 minutes ({token, expires, topic});
//      a wrong password is a 401. The password is not kept; the token lives in this page's
//      memory only, and is renewed (POST /admin/token with Authorization: Bearer <token>)
//      every 2 minutes.
//   2. A WebSocket to /ws?admin=<token> (a wrong or expired token is refused with 401) subscribes
//      to $sys/admin with the ordinary protocol (docs/protocol.md) and renders each push.
//
// A raw WebSocket rather than /pushwire.mjs: the admin credential goes in the /ws URL, which
// the browser client does not let a caller extend, and this page needs one transport only.
//
// Everything shown carries data-* attributes with the raw numbers (the browser tests read them).
'use strict';
(function () {
  const RENEW_EVERY_MS = 120 * 1000;
  const HISTORY = 120; // seconds of rate history in the chart
  const $ = (id) => document.getElementById(id);
  const statusLine = $('status');
  let token = null;
  let topic = '$sys/admin';
  let socket = null;
  let renewTimer = null;
  let retry = 0;
  const rates = []; // [{t, published, delivered}]

  function setStatus(state, text) {
    statusLine.dataset.state = state;
    statusLine.textContent = text;
  }

  async function fetchToken(body, bearer) {
    const headers = { 'Content-Type': 'application/json' };
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    const res = await fetch('/admin/token', { method: 'POST', headers, body: JSON.stringify(body || {}), cache: 'no-store' });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) {
      const message = (answer.error && answer.error.message) || ('HTTP ' + res.status);
      const err = new Error(message);
      err.status = res.status;
      throw err;
    }
    return answer;
  }

  $('login').addEventListener('submit', async (event) => {
    event.preventDefault();
    const password = $('password');
    $('login-error').textContent = '';
    try {
      const answer = await fetchToken({ password: password.value });
      password.value = '';
      token = answer.token;
      topic = answer.topic || topic;
      $('login').hidden = true;
      $('dash').hidden = false;
      renewTimer = setInterval(renew, RENEW_EVERY_MS);
      open();
    } catch (err) {
      $('login-error').textContent = err.message;
      setStatus('logged-out', 'logged out');
    }
  });

  async function renew() {
    try {
      token = (await fetchToken({}, token)).token;
    } catch (err) {
      if (err.status === 401) logout('session ended: ' + err.message);
    }
  }

  function logout(why) {
    token = null;
    clearInterval(renewTimer);
    if (socket) socket.close();
    socket = null;
    $('dash').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = why;
    setStatus('logged-out', 'logged out');
  }

  function open() {
    if (!token) return;
    setStatus('connecting', 'connecting…');
    const url = location.origin.replace(/^http/, 'ws') + '/ws?admin=' + encodeURIComponent(token);
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: 'sub', id: 1, topic }));
    };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      if (message.id === 1 && message.error) {
        setStatus('error', 'refused: ' + message.error.message);
      } else if (message.id === 1 && message.ok) {
        retry = 0;
        setStatus('live', 'live');
      } else if (message.topic === topic && message.data) {
        render(message.data);
      }
    };
    ws.onclose = () => {
      if (socket !== ws || !token) return;
      setStatus('connecting', 'disconnected; reconnecting…');
      retry = Math.min(retry + 1, 6);
      const wait = Math.random() * 250 * 2 ** retry;
      // A refused upgrade (401: the token expired) is not visible here: renew first.
      setTimeout(() => renew().then(open), wait);
    };
  }

  // ---------------------------------------------------------------------------------------
  // Rendering

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fill(parent, children) {
    parent.replaceChildren(...children);
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    return Math.round(s / 3600) + ' h';
  }

  function render(snap) {
    const me = snap.node;
    $('node').textContent = `${me.id} · ${me.addr} · pushwire ${me.version} · up ${ago(snap.time - me.started)}`;
    $('node').dataset.node = me.id;

    const conns = snap.connections || {};
    let total = 0;
    const rows = Object.entries(conns).map(([transport, n]) => {
      total += n;
      const tr = el('tr', { 'data-transport': transport, 'data-value': n });
      tr.append(el('td', {}, transport), el('td', { class: 'n' }, String(n)));
      return tr;
    });
    const sum = el('tr', { 'data-transport': 'total', 'data-value': total });
    sum.append(el('th', {}, 'total'), el('th', { class: 'n' }, String(total)));
    fill($('connections').tBodies[0], [...rows, sum]);

    const pub = snap.published_per_second || 0;
    const del = snap.delivered_per_second || 0;
    setNumber($('rate-published'), pub);
    setNumber($('rate-delivered'), del);
    rates.push({ t: snap.time, published: pub, delivered: del });
    while (rates.length > HISTORY) rates.shift();
    drawRates();

    drawLatency(snap.latency || []);

    setNumber($('topic-count'), snap.topic_count || 0);
    fill($('topics').tBodies[0], (snap.topics || []).map((t) => {
      const tr = el('tr', { 'data-topic': t.topic, 'data-subscribers': t.subscribers });
      tr.append(el('td', {}, t.topic), el('td', { class: 'n' }, String(t.subscribers)));
      return tr;
    }));

    const nodes = snap.nodes || [];
    setNumber($('node-count'), nodes.length);
    fill($('nodes'), nodes.map((n) => {
      const li = el('li', { 'data-node': n.id, 'data-addr': n.addr }, `${n.id} · ${n.addr} · ${n.version} · seen ${ago(snap.time - n.seen)} ago`);
      if (n.id === me.id) li.className = 'me';
      return li;
    }));

    const errors = (snap.errors || []).slice().reverse();
    fill($('errors'), errors.length ? errors.map((e) => {
      const li = el('li', { 'data-level': e.level });
      li.append(
        el('span', { class: 'when' }, new Date(e.time).toLocaleTimeString()),
        el('span', { class: 'level ' + e.level }, e.level),
        el('span', { class: 'target' }, e.target + ': '),
        el('span', { class: 'message' }, e.message),
      );
      return li;
    }) : [el('li', { class: 'none' }, 'none')]);
  }

  function setNumber(node, value) {
    node.dataset.value = String(value);
    node.textContent = Number.isInteger(value) ? String(value) : value.toFixed(1);
  }

  function drawRates() {
    const canvas = $('rate-chart');
    const ctx = canvas.getContext('2d');
    const w = canvas.width;
    const h = canvas.height;
    const pad = { left: 48, right: 8, top: 10, bottom: 20 };
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...rates.map((r) => Math.max(r.published, r.delivered)));
    const top = niceCeil(max);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#5a6375';
    ctx.strokeStyle = '#e3e6ec';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.top + (h - pad.top - pad.bottom) * (1 - i / 4);
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(w - pad.right, y);
      ctx.stroke();
      ctx.fillText(formatRate(top * i / 4), 4, y + 4);
    }
    ctx.fillText(`last ${HISTORY} s`, pad.left, h - 4);
    const x = (i) => pad.left + (w - pad.left - pad.right) * (i + HISTORY - rates.length) / (HISTORY - 1);
    const y = (v) => pad.top + (h - pad.top - pad.bottom) * (1 - v / top);
    for (const [key, colour] of [['published', '#2f6fdb'], ['delivered', '#1f9d55']]) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      rates.forEach((r, i) => (i ? ctx.lineTo(x(i), y(r[key])) : ctx.moveTo(x(i), y(r[key]))));
      ctx.stroke();
    }
  }

  function niceCeil(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function formatRate(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    return String(Math.round(v * 10) / 10);
  }

  function formatSeconds(s) {
    if (s === null) return '+Inf';
    if (s < 1e-3) return Math.round(s * 1e6) + 'µs';
    if (s < 1) return Math.round(s * 1e4) / 10 + 'ms';
    return s + 's';
  }

  function drawLatency(buckets) {
    const svg = $('latency');
    const NS = 'http://www.w3.org/2000/svg';
    // Cumulative counts to counts per bucket.
    let before = 0;
    const bars = buckets.map((b) => {
      const n = b.count - before;
      before = b.count;
      return { le: b.le, n };
    });
    const total = before;
    const max = Math.max(1, ...bars.map((b) => b.n));
    svg.dataset.count = String(total);
    $('latency-summary').textContent = total ? `${total} deliveries measured` : 'no deliveries measured yet';
    const children = [];
    const w = 720;
    const h = 180;
    const slot = bars.length ? (w - 20) / bars.length : w;
    bars.forEach((b, i) => {
      const bh = (h - 40) * b.n / max;
      const rect = document.createElementNS(NS, 'rect');
      rect.setAttribute('x', String(10 + i * slot + 2));
      rect.setAttribute('y', String(h - 24 - bh));
      rect.setAttribute('width', String(Math.max(1, slot - 4)));
      rect.setAttribute('height', String(bh));
      rect.setAttribute('data-le', b.le === null ? '+Inf' : String(b.le));
      rect.setAttribute('data-count', String(b.n));
      const title = document.createElementNS(NS, 'title');
      title.textContent = `≤ ${formatSeconds(b.le)}: ${b.n}`;
      rect.append(title);
      const label = document.createElementNS(NS, 'text');
      label.setAttribute('x', String(10 + i * slot + slot / 2));
      label.setAttribute('y', String(h - 8));
      label.setAttribute('text-anchor', 'middle');
      label.textContent = formatSeconds(b.le);
      const count = document.createElementNS(NS, 'text');
      count.setAttribute('x', String(10 + i * slot + slot / 2));
      count.setAttribute('y', String(h - 28 - bh));
      count.setAttribute('text-anchor', 'middle');
      count.textContent = b.n ? String(b.n) : '';
      children.push(rect, label, count);
    });
    svg.replaceChildren(...children);
  }
})();
