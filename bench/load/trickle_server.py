#!/usr/bin/env python3
"""A fake provider whose stream trickles: for the first-chunk check of bench/load/run-load.sh.

    trickle_server.py PORT SSE_FILE [GAP_MS]

Answers every POST with the canned SSE body as a chunked HTTP/1.1 response (keep-alive): the first event at once,
then each further event GAP_MS (default 5) later. nginx's limit_rate cannot do this (its budget is per whole second).
Listens on 127.0.0.1 only.
"""
import socket
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler

PORT = int(sys.argv[1])
EVENTS = [e + b"\n\n" for e in open(sys.argv[2], "rb").read().split(b"\n\n") if e.strip()]
GAP = (float(sys.argv[3]) if len(sys.argv) > 3 else 5.0) / 1000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, event in enumerate(EVENTS):
            if i:
                time.sleep(GAP)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server(("127.0.0.1", PORT), Handler) as server:
        server.serve_forever()
