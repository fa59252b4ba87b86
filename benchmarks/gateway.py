"""A fake gateway for benchmarks: a threaded HTTP server on 127.0.0.1 that answers every send with
a new ``message_id`` and every status request with ``delivered``, each after a fixed latency.

Run as ``python -m benchmarks.gateway --latency 0.02``: it prints its port on the first line of
its output, then serves until it is terminated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEND_PATH = "/v1/api/send-whatsapp"
STATUS_PATH = "/v1/api/receive-whatsapp"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    latency = 0.0
    ids = itertools.count(1_000_000)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a pooled client reuses its connections
    # Headers and body are separate writes: with Nagle's algorithm the body would wait for the
    # client's delayed ACK (40 ms on Linux), as no real web server lets it.
    disable_nagle_algorithm = True
    server: Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length) or b"{}")
        time.sleep(self.server.latency)
        if self.path == SEND_PATH:
            answer = {"message_id": next(self.server.ids)}
        elif self.path == STATUS_PATH:
            answer = {"message_id": body.get("message_id"), "status": 1}
        else:
            self.send_error(404)
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.02, help="Seconds added per request.")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    server = Server(("127.0.0.1", options.port), Handler)
    server.latency = options.latency
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
