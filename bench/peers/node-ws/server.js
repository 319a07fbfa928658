'use strict';
// Benchmark peer: the counter and broadcast endpoints on Node.js with the ws package.
//
// /socket     each connection gets its own counter: "1" one interval after it opens,
//             then "2", "3", ... on a fixed grid: the n-th tick is due at open + n ×
//             interval, and ticks missed while the process was busy are skipped, not
//             fired in a burst (like pushwire's ticker and Tornado's PeriodicCallback).
// /broadcast  every text message a client sends goes, unchanged, to every client
//             connected to /broadcast at that moment, the sender included (the
//             "Server broadcast" example of the ws README).
//
// Usage: node server.js [--port N] [--deflate]
// Prints "ready ws://127.0.0.1:<port>" once it accepts connections; runs until
// SIGTERM or SIGINT. COUNTER_INTERVAL_MS overrides the 1000 ms interval.

const http = require('node:http');
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');
const { WebSocketServer } = WebSocket;

function usage(message) {
  process.stderr.write(`${message}\nusage: node server.js [--port N] [--deflate]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { port: 8888, deflate: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--deflate') {
      args.deflate = true;
    } else if (arg === '--port' || arg.startsWith('--port=')) {
      const value = arg === '--port' ? argv[++i] : arg.slice('--port='.length);
      if (value === undefined || !/^\d+$/.test(value) || Number(value) > 65535) {
        usage(`--port needs a number from 0 to 65535, not ${value}`);
      }
      args.port = Number(value);
    } else {
      usage(`unknown argument: ${arg}`);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const intervalMs = Number(process.env.COUNTER_INTERVAL_MS || 1000);
if (!(intervalMs > 0)) usage('COUNTER_INTERVAL_MS must be a positive number of milliseconds');

// `true` is ws's own default set of deflate options; false turns the extension off.
const options = { noServer: true, perMessageDeflate: args.deflate };
const counter = new WebSocketServer(options);
const broadcast = new WebSocketServer(options);

counter.on('connection', function connection(ws) {
  ws.on('error', () => {});
  const start = performance.now();
  let count = 0;
  let timer;
  function schedule() {
    // Next point of the grid after now: a late tick does not push the others back.
    const elapsed = performance.now() - start;
    const next = Math.max(count + 1, Math.floor(elapsed / intervalMs) + 1);
    timer = setTimeout(tick, next * intervalMs - elapsed);
  }
  function tick() {
    count += 1;
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(String(count));
    schedule();
  }
  schedule();
  ws.on('close', () => clearTimeout(timer));
});

broadcast.on('connection', function connection(ws) {
  ws.on('error', () => {});
  ws.on('message', function message(data, isBinary) {
    // ws frames per socket; the payload Buffer is shared, not converted per client.
    broadcast.clients.forEach(function each(client) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

server.on('upgrade', function upgrade(request, socket, head) {
  const { pathname } = new URL(request.url, 'ws://localhost');
  const wss = pathname === '/socket' ? counter : pathname === '/broadcast' ? broadcast : null;
  if (wss === null) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(request, socket, head, function done(ws) {
    wss.emit('connection', ws, request);
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}

server.listen(args.port, '127.0.0.1', () => {
  process.stdout.write(`ready ws://127.0.0.1:${server.address().port}\n`);
});
