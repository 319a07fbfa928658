// The counter page: one WebSocket to `socket` next to this page, the latest number
// in #data, and a log (#log) of what happened to the connection. When the socket
// closes, the page reconnects by itself with exponential backoff and jitter; a new
// connection's counter starts again at 1.
'use strict';
(function () {
  const data = document.getElementById('data');
  const status = document.getElementById('status');
  const log = document.getElementById('log');
  const FIRST_DELAY_MS = 500;
  const MAX_DELAY_MS = 5000;
  const MAX_LOG_LINES = 50;
  const CLOSE_NAMES = {
    1000: 'normal closure',
    1001: 'going away',
    1006: 'connection lost',
    1011: 'server error',
  };
  let failures = 0;

  // ws: or wss: to match the page, on the page's own host and path.
  function socketUrl() {
    const url = new URL('socket', window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.href;
  }

  function note(text) {
    const line = document.createElement('li');
    line.textContent = text;
    log.appendChild(line);
    while (log.children.length > MAX_LOG_LINES) {
      log.removeChild(log.firstChild);
    }
  }

  function connect() {
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (err) {
      note('Error: ' + err.message);
      retry();
      return;
    }
    status.textContent = 'connecting…';
    socket.onopen = function () {
      failures = 0;
      status.textContent = 'connected';
      note('Open: ' + socket.url);
    };
    socket.onmessage = function (event) {
      data.textContent = event.data;
    };
    socket.onerror = function () {
      // Browsers give error events no detail, on purpose; the close event follows.
      note('Error: the connection failed');
    };
    socket.onclose = function (event) {
      const reason = event.reason || CLOSE_NAMES[event.code] || 'no reason given';
      note('Close: ' + event.code + ' (' + reason + ')');
      retry();
    };
  }

  // Exponential backoff with "equal jitter": half the ceiling, plus a random half.
  function retry() {
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** failures);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    failures += 1;
    const text = 'Reconnecting in ' + (delay / 1000).toFixed(1) + ' s…';
    status.textContent = text.charAt(0).toLowerCase() + text.slice(1);
    note(text);
    window.setTimeout(connect, delay);
  }

  connect();
})();
