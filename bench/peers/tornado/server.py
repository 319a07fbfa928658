"""Benchmark peer: the original Tornado counter app, plus a broadcast room.

/socket     each connection gets its own counter: "1" one interval after it opens,
            then "2", "3", ... on a fixed grid (tornado.ioloop.PeriodicCallback
            skips ticks it missed instead of bursting, like pushwire's ticker).
/broadcast  every text message a client sends goes, unchanged, to every client
            connected to /broadcast at that moment, the sender included.

Usage: server.py [--port N] [--deflate]
Prints "ready ws://127.0.0.1:<port>" once it accepts connections; runs until
SIGTERM or SIGINT. COUNTER_INTERVAL_MS overrides the 1000 ms interval.
"""

import argparse
import asyncio
import os
import signal
import sys

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
import tornado.websocket


class CounterHandler(tornado.websocket.WebSocketHandler):
    def initialize(self, interval_ms, deflate):
        self.interval_ms = interval_ms
        self.deflate = deflate

    def get_compression_options(self):
        # {} turns permessage-deflate on with Tornado's defaults; None keeps it off.
        return {} if self.deflate else None

    def open(self):
        self.count = 0
        self.callback = tornado.ioloop.PeriodicCallback(self.send_count, self.interval_ms)
        self.callback.start()

    def send_count(self):
        self.count += 1
        try:
            self.write_message(str(self.count))
        except tornado.websocket.WebSocketClosedError:
            self.callback.stop()

    def on_message(self, message):
        pass

    def on_close(self):
        self.callback.stop()


class BroadcastHandler(tornado.websocket.WebSocketHandler):
    clients = set()

    def initialize(self, deflate):
        self.deflate = deflate

    def get_compression_options(self):
        return {} if self.deflate else None

    def open(self):
        BroadcastHandler.clients.add(self)

    def on_message(self, message):
        # Encode once: Tornado takes bytes for a text frame (binary=False), so the
        # UTF-8 payload is shared; Tornado still frames (and compresses) per socket.
        data = message.encode("utf-8") if isinstance(message, str) else message
        binary = not isinstance(message, str)
        for client in list(BroadcastHandler.clients):
            try:
                client.write_message(data, binary=binary)
            except tornado.websocket.WebSocketClosedError:
                BroadcastHandler.clients.discard(client)

    def on_close(self):
        BroadcastHandler.clients.discard(self)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8888, help="0 picks a free port")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    return parser.parse_args(argv)


async def main(argv):
    args = parse_args(argv)
    interval_ms = int(os.environ.get("COUNTER_INTERVAL_MS", "1000"))
    if interval_ms <= 0:
        sys.exit("COUNTER_INTERVAL_MS must be a positive number of milliseconds")
    app = tornado.web.Application(
        [
            (r"/socket", CounterHandler, dict(interval_ms=interval_ms, deflate=args.deflate)),
            (r"/broadcast", BroadcastHandler, dict(deflate=args.deflate)),
        ]
    )
    sockets = tornado.netutil.bind_sockets(args.port, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    print(f"ready ws://127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
