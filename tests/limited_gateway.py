"""A fake gateway over real TCP that enforces a rate limit, for the rate-limit and campaign tests.

A threaded HTTP server on 127.0.0.1. Each send is answered with a new ``message_id``, unless the
gateway's token bucket (``rate`` per second, ``burst`` deep) is empty: then ``429 Too Many
Requests`` with ``Retry-After``. Every request is logged with its arrival time (the gateway's own
clock: ``time.monotonic``, or the simulated time a test gives as ``clock``), its destination and
the answer, so tests measure what the gateway saw.

``hold()`` makes it keep every request unanswered until ``release()`` (a frozen gateway), so a
test can kill a worker while its requests are certainly out.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEND_PATH = "/v1/api/send-whatsapp"


@dataclass(frozen=True)
class Logged:
    """One request as the gateway saw it."""

    at: float
    destination: int | None
    status: int


class LimitedGateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        rate: float | None = None,
        *,
        burst: float | None = None,
        retry_after: int = 1,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self.retry_after = retry_after
        self.latency = latency
        self.clock = clock
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(5_000_000)
        self._tokens = self.burst
        self._filled_at = clock()
        #: Answer this many requests with 429 first, whatever the bucket says.
        self.refuse_first = 0
        self._open = threading.Event()
        self._open.set()
        self.held = 0
        #: The destinations of the requests held, in order of arrival.
        self.held_destinations: list[int | None] = []
        self.arrived = threading.Condition(self.lock)
        # A short poll: close() (shutdown) waits for it, 0.5 s by default.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/api"

    def close(self) -> None:
        self._open.set()
        self.shutdown()
        self.server_close()

    def hold(self) -> None:
        """Keep every request from now on unanswered until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _admit(self) -> bool:
        """Take a token from the bucket (called under the lock)."""
        if self.refuse_first > 0:
            self.refuse_first -= 1
            return False
        if self.rate is None:
            return True
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    # -- what the gateway saw --------------------------------------------------------------

    def accepted_destinations(self) -> Counter[int]:
        with self.lock:
            return Counter(e.destination for e in self.log if e.status == 200 and e.destination)

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for e in self.log if e.status == status)

    def busiest_second(self) -> int:
        """The most requests that arrived within any one second (a sliding window)."""
        with self.lock:
            times = sorted(e.at for e in self.log)
        best = start = 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        """Block until ``predicate(self)`` holds (checked whenever a request arrives); fail
        loudly after ``timeout`` seconds."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: predicate(self), timeout=timeout):
                raise AssertionError(f"the gateway never saw the expected requests: {self.log!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: LimitedGateway

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length) or b"{}")
        gateway = self.server
        with gateway.lock:
            admitted = self.path == SEND_PATH and gateway._admit()
            status = 200 if admitted else 429
            destination = body.get("destination_addr") if isinstance(body, dict) else None
            gateway.log.append(Logged(gateway.clock(), destination, status))
            if not gateway._open.is_set():
                gateway.held += 1
                gateway.held_destinations.append(destination)
            gateway.arrived.notify_all()
        if not gateway._open.is_set():
            gateway._open.wait()
        if gateway.latency:
            threading.Event().wait(gateway.latency)  # the gateway's own latency
        if status == 200:
            data = json.dumps({"message_id": next(gateway.ids)}).encode()
            self.send_response(200)
        else:
            data = json.dumps({"name": "Too Many Requests", "status": 429}).encode()
            self.send_response(429)
            self.send_header("Retry-After", str(gateway.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
