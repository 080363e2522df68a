#!/usr/bin/env python3
"""A real HTTP/1.1 upstream for the ToolgateUpstream tests (Python 3 stdlib only).

Listens on a free loopback port and prints one JSON line: {"port": P, "blackhole_port": B}.
B is a listening socket whose accept queue is full, so connecting to it hangs (connect timeout tests).
Exits when its standard input closes, so it never outlives the test process.

Routes:
  /echo                      method, path, headers (in order) and body (hex) as JSON
  /status?code=N             that status with a short body
  /headers                   custom response headers, to check order and spelling
  /interim                   100 Continue and 103 Early Hints before the final 200
  /sse?count=N&gap_ms=G&id=I N events, G ms apart; /stream-status?id=I tells running/done/aborted
  /sse-gated?id=I            event 1, then waits for /release?id=I before event 2 (10 s at most)
  /large?bytes=N&id=I        N bytes of (offset % 251); /progress?id=I tells how many were written
  /hang                      never answers
  /silent-body               a head and one chunk, then silence
  /truncated                 promises 1000 bytes, sends 10 and closes
  /garbage                   not HTTP at all
  /connections               how many TCP connections the server has accepted
"""
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

lock = threading.Lock()
connections = 0
streams = {}  # id -> {"state": ..., "sent": n}
progress = {}  # id -> bytes written
gates = {}  # id -> threading.Event


def gate(ident):
    with lock:
        return gates.setdefault(ident, threading.Event())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        super().setup()
        with lock:
            connections += 1

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def query(self):
        parts = urlsplit(self.path)
        return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, value, status=200):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def start_stream(self, content_type="text/event-stream"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def route(self):
        path, query = self.query()
        body = self.read_body()
        handler = getattr(self, "route_" + path.strip("/").replace("-", "_"), None)
        if handler is None:
            self.send_json({"error": "no route " + path}, 404)
        else:
            handler(query, body)

    def route_echo(self, query, body):
        self.send_json({
            "method": self.command,
            "path": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body_hex": body.hex(),
        })

    def route_status(self, query, body):
        data = b"upstream says no"
        self.send_response(int(query.get("code", "500")))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route_headers(self, query, body):
        self.send_response(200)
        self.send_header("X-First", "1")
        self.send_header("mcp-session-id", "session-42")
        self.send_header("Set-Cookie", "a=1")
        self.send_header("X-Mixed-CASE", "2")
        self.send_header("Set-Cookie", "b=2")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def route_interim(self, query, body):
        self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        self.wfile.flush()
        self.send_response(200)
        self.send_header("X-Final", "yes")
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"final")

    def route_sse(self, query, body):
        ident = query.get("id", "-")
        count = int(query.get("count", "3"))
        gap = int(query.get("gap_ms", "50")) / 1000
        with lock:
            streams[ident] = {"state": "running", "sent": 0}
        self.start_stream()
        try:
            for n in range(1, count + 1):
                self.chunk(b"id: %d\ndata: {\"n\": %d}\n\n" % (n, n))
                with lock:
                    streams[ident]["sent"] = n
                if n < count:
                    time.sleep(gap)
            self.chunk(b"")
            with lock:
                streams[ident]["state"] = "done"
        except OSError:
            with lock:
                streams[ident]["state"] = "aborted"
            self.close_connection = True

    def route_stream_status(self, query, body):
        with lock:
            self.send_json(streams.get(query.get("id", "-"), {"state": "unknown", "sent": 0}))

    def route_sse_gated(self, query, body):
        ident = query.get("id", "-")
        self.start_stream()
        self.chunk(b"id: 1\ndata: first\n\n")
        released = gate(ident).wait(10)
        self.chunk(b"id: 2\ndata: second\n\n" if released else b"data: gate-timeout\n\n")
        self.chunk(b"")

    def route_release(self, query, body):
        gate(query.get("id", "-")).set()
        self.send_json({"released": True})

    def route_large(self, query, body):
        ident = query.get("id", "-")
        total = int(query.get("bytes", str(1 << 20)))
        pattern = bytes(i % 251 for i in range(251 * 256))  # 64256 bytes, a whole number of periods
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        written = 0
        with lock:
            progress[ident] = 0
        try:
            while written < total:
                block = pattern[: min(len(pattern), total - written)]
                self.wfile.write(block)
                written += len(block)
                with lock:
                    progress[ident] = written
        except OSError:
            self.close_connection = True

    def route_progress(self, query, body):
        with lock:
            self.send_json({"written": progress.get(query.get("id", "-"), -1)})

    def route_hang(self, query, body):
        threading.Event().wait(60)
        self.close_connection = True

    def route_silent_body(self, query, body):
        self.start_stream("text/plain")
        self.chunk(b"hello")
        threading.Event().wait(60)
        self.close_connection = True

    def route_truncated(self, query, body):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True

    def route_garbage(self, query, body):
        self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def route_connections(self, query, body):
        with lock:
            self.send_json({"count": connections})


class Server(ThreadingHTTPServer):
    # The default backlog of 5 drops the handshakes of a burst of concurrent clients, which then wait for
    # TCP retransmissions: seconds of delay that the tests would blame on the client.
    request_queue_size = 256
    daemon_threads = True


def blackhole():
    """A listener whose accept queue is full: further SYNs are dropped, so connects hang."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.05)
    return listener, fillers


def main():
    server = Server(("127.0.0.1", 0), Handler)
    hole, fillers = blackhole()
    print(json.dumps({"port": server.server_address[1], "blackhole_port": hole.getsockname()[1]}), flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
