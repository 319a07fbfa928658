// bench/peers/soketi/server.js: soketi 1.6.1 as `soketi start` runs it (its Cli: the
// options from SOKETI_* variables, its defaults otherwise), with one app, listening on
// 127.0.0.1. Prints "ready ws://127.0.0.1:PORT" on stdout once it accepts connections;
// soketi's own messages go to stderr.
//
//   node server.js [--port N] [--deflate]
//
// The app is SOKETI_DEFAULT_APP_ID / _KEY / _SECRET (default bench-app, bench-key,
// bench-secret). --port 0 picks a free port. --deflate: soketi has no compression
// setting; a note says so and the server runs uncompressed.
'use strict';

const net = require('net');

// soketi logs with console.log; stdout carries only the ready line.
console.log = (...args) => console.error(...args);

let port = 8888;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') {
    port = Number(argv[++i]);
  } else if (argv[i] === '--deflate') {
    console.error('note: soketi has no permessage-deflate setting; running uncompressed');
  } else {
    console.error(`soketi peer: unknown argument ${argv[i]}`);
    process.exit(2);
  }
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('soketi peer: --port wants a port number');
  process.exit(2);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
}

const defaults = {
  SOKETI_DEFAULT_APP_ID: 'bench-app',
  SOKETI_DEFAULT_APP_KEY: 'bench-key',
  SOKETI_DEFAULT_APP_SECRET: 'bench-secret',
  SOKETI_HOST: '127.0.0.1',
  SOKETI_METRICS_HOST: '127.0.0.1',
};

(async () => {
  if (port === 0) port = await freePort();
  for (const [name, value] of Object.entries(defaults)) {
    if (!process.env[name]) process.env[name] = value;
  }
  process.env.SOKETI_PORT = String(port);
  // soketi also serves /usage on a port of its own (9601 by default).
  if (!process.env.SOKETI_METRICS_SERVER_PORT) {
    process.env.SOKETI_METRICS_SERVER_PORT = String(await freePort());
  }
  const { Cli } = require('@soketi/soketi/dist/cli/cli');
  const cli = new Cli();
  cli.overwriteOptionsFromEnv();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    cli.server.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  cli.server.start(() => {
    process.stdout.write(`ready ws://127.0.0.1:${port}\n`);
  });
})().catch((err) => {
  console.error(`soketi peer: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
