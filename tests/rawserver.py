"""A raw TCP server on 127.0.0.1 for the failures an HTTP test server cannot produce (dropped
connections, stalls, cut-off bodies, a TLS handshake answered in plain text). The
``raw_server`` fixture in conftest.py starts them and closes them after the test."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any


class RawServer:
    """A TCP server on 127.0.0.1 that plays one scripted behaviour per connection (the last
    behaviour repeats), for the failures an HTTP test server cannot produce."""

    def __init__(self, *behaviours: Callable[[RawServer, socket.socket], None]) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.02)
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1/api"
        self.behaviours = behaviours
        self.requests: list[bytes] = []
        self.connections = 0
        self.release = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start(self._serve)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            behaviour = self.behaviours[min(self.connections, len(self.behaviours) - 1)]
            self.connections += 1
            self._start(self._handle, conn, behaviour)

    def _handle(self, conn: socket.socket, behaviour: Callable[..., None]) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                behaviour(self, conn)

    def read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _sep, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _colon, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.requests.append(head + b"\r\n\r\n" + body)
        return body

    def close(self) -> None:
        self.release.set()
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._sock.close()


def drop(server: RawServer, conn: socket.socket) -> None:
    """Read the whole request, then close the connection without a word."""
    server.read_request(conn)


def hang(server: RawServer, conn: socket.socket) -> None:
    """Read the whole request and never answer (until the test ends)."""
    server.read_request(conn)
    server.release.wait(5)


def answer(raw: bytes, *, then_hang: bool = False) -> Callable[[RawServer, socket.socket], None]:
    def behaviour(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(raw)
        if then_hang:
            server.release.wait(5)

    return behaviour


def http_json(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
    )


def not_tls(server: RawServer, conn: socket.socket) -> None:
    """Answer a TLS handshake in plain HTTP."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
