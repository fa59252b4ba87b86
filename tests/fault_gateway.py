"""A fake gateway over real TCP on 127.0.0.1 whose faults a test switches on and off, for the
fault tests and the fault benchmark.

- ``balance``: how many more sends it accepts before it answers ``402`` with code 3 ("Topup
  balance is required"), as the provider's document says; ``None`` (the default) for no limit.
  :meth:`top_up` lifts it.
- ``refuse``: an answer given to every send instead of accepting it (``"auth"``: 401;
  ``"server"``: 500 with code 2; ``"rate"``: 429 with ``Retry-After: 0``; ``"hostile"``: 400 whose
  name and message carry a NUL and a lone surrogate), or ``None``.
- :meth:`hold` keeps every request unanswered until :meth:`release` (:attr:`held` counts
  them), so that a test can kill a worker while its requests are certainly out.
- :meth:`stop` closes its port (every new connection is refused, as when its process is gone),
  after answering the requests it is in the middle of; :meth:`start` opens the same port again.

Every answer closes its connection (no keep-alive), so that a stop never cuts a request that
was already sent. It counts what it accepted per destination (:meth:`accepted`), and every
send it answered otherwise (:attr:`refused`).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

SEND_PATH = "/v1/api/send-whatsapp"

ANSWERS: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {
    "balance": (
        402,
        {
            "name": "Topup balance is required",
            "message": "User balance is empty",
            "code": 3,
            "status": 402,
        },
        {},
    ),
    "auth": (
        401,
        {
            "name": "Unauthorized",
            "message": "Your request was made with invalid credentials.",
            "code": 0,
            "status": 401,
        },
        {},
    ),
    "server": (
        500,
        {"name": "Internal server error", "message": "Oops", "code": 2, "status": 500},
        {},
    ),
    "rate": (
        429,
        {"name": "Too Many Requests", "message": "Rate limit exceeded", "code": 0, "status": 429},
        {"Retry-After": "0"},
    ),
    "hostile": (
        400,
        {
            "name": "Bad\u0000name \ud800",
            "message": "nul\u0000 and \udfff lone",
            "code": 42,
            "status": 400,
        },
        {},
    ),
}


class FaultGateway:
    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.lock = threading.Condition()
        self.balance: int | None = None
        self.refuse: str | None = None
        #: With ``refuse``: how many sends to refuse before accepting again (``None``: all).
        self.refuse_left: int | None = None
        self.ids = itertools.count(7_000_000)
        self._accepted: Counter[int] = Counter()
        self._accepted_at: list[float] = []
        #: Sends answered with anything but acceptance, by the kind of answer.
        self.refused: Counter[str] = Counter()
        self._busy = 0
        self._open = threading.Event()
        self._open.set()
        #: Requests kept unanswered by :meth:`hold` right now.
        self.held = 0
        self._triggers: dict[int, Any] = {}
        self.port = 0
        self._server: socket.socket | None = None
        self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/api"

    # -- switching -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the port (the same one again after a :meth:`stop`). Connections are accepted
        as soon as they come, each answered in a thread of its own."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self.port = listener.getsockname()[1]
        self._server = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        handler = _handler(self)
        while True:
            try:
                connection, address = listener.accept()
            except OSError:
                return  # closed by stop()
            with self.lock:
                self._busy += 1
            threading.Thread(
                target=self._serve, args=(handler, connection, address), daemon=True
            ).start()

    def _serve(
        self, handler: type[BaseHTTPRequestHandler], connection: socket.socket, address: Any
    ) -> None:
        try:
            handler(connection, address, None)  # type: ignore[arg-type]
        except OSError:
            pass  # the client went away
        finally:
            connection.close()
            with self.lock:
                self._busy -= 1
                self.lock.notify_all()

    def stop(self) -> None:
        """Close the port at once: new connections are refused. Returns once the requests it
        was answering are answered."""
        listener, self._server = self._server, None
        if listener is None:
            return
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with self.lock:
            self.lock.wait_for(lambda: self._busy == 0, timeout=120)

    @property
    def up(self) -> bool:
        return self._server is not None

    def when_accepted(self, count: int, action: Any) -> None:
        """Run ``action()`` (in a thread of its own) as soon as the gateway has accepted
        ``count`` sends: a fault that strikes mid-campaign, however fast the senders are."""
        with self.lock:
            self._triggers[count] = action

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def top_up(self) -> None:
        with self.lock:
            self.balance = None

    def close(self) -> None:
        self.release()
        self.stop()

    # -- what it saw -----------------------------------------------------------------------

    def accepted(self) -> Counter[int]:
        with self.lock:
            return Counter(self._accepted)

    def accepted_times(self) -> list[float]:
        """When each acceptance was answered (``time.monotonic()``)."""
        with self.lock:
            return list(self._accepted_at)

    def total_accepted(self) -> int:
        with self.lock:
            return sum(self._accepted.values())

    def wait_for(self, predicate: Any, *, what: str, timeout: float = 120.0) -> None:
        """Block until ``predicate(self)`` holds (checked at every request it answers)."""
        with self.lock:
            if not self.lock.wait_for(lambda: predicate(self), timeout=timeout):
                raise AssertionError(
                    f"gave up waiting for {what}: accepted {sum(self._accepted.values())}, "
                    f"refused {dict(self.refused)}"
                )

    def _answer(self, body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        destination = body.get("destination_addr") if isinstance(body, dict) else None
        with self.lock:
            kind = self.refuse
            if kind is None and self.balance is not None:
                if self.balance <= 0:
                    kind = "balance"
                else:
                    self.balance -= 1
            if kind is None and isinstance(destination, int):
                self._accepted[destination] += 1
                self._accepted_at.append(time.monotonic())
                answer = (200, {"message_id": next(self.ids)}, {})
                action = self._triggers.pop(sum(self._accepted.values()), None)
                if action is not None:
                    threading.Thread(target=action, daemon=True).start()
            elif kind is None:
                answer = (400, {"name": "Invalid Parameter: destination_addr", "code": 1}, {})
            else:
                self.refused[kind] += 1
                answer = ANSWERS[kind]
                if kind == self.refuse and self.refuse_left is not None:
                    self.refuse_left -= 1
                    if self.refuse_left <= 0:
                        self.refuse, self.refuse_left = None, None
            self.lock.notify_all()
            return answer


def _handler(gateway: FaultGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body: Any = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = None
            if gateway.latency:
                threading.Event().wait(gateway.latency)  # the gateway's own latency
            if not gateway._open.is_set():
                with gateway.lock:
                    gateway.held += 1
                    gateway.lock.notify_all()
                gateway._open.wait()
                with gateway.lock:
                    gateway.held -= 1
            status, answer, headers = gateway._answer(body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
