"""The lifecycle benchmark's fake gateway: answers every send after a fixed latency, then calls
back ``sent``, ``delivered`` and ``seen`` for it over real HTTP to the ``callback_url`` the send
carried, and for one send in ``--reply-every`` posts the recipient's answer to the inbound URL.

Run as ``python -m benchmarks.lifecycle_gateway --inbound-url URL``: it prints its port on the
first line of its output, then serves until it is terminated. ``GET /stats`` answers its
counters as JSON (times are ``time.monotonic()``, the same clock in every process of the
machine).

One asyncio loop does it all, so that the gateway's own CPU stays small beside the app's: the
sends are answered on keep-alive connections; the callbacks go out ``--concurrency`` at a time,
each on a new connection (gunicorn's sync workers close theirs), in the order they fall due. A
callback answered with anything but 200 (or not answered) is counted and sent again a second
later, as a gateway retries a webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

SEND_PATH = "/v1/api/send-whatsapp"
#: The provider's status codes for the three callbacks (sent, delivered, seen).
STATUS_CODES = {"sent": 0, "delivered": 1, "seen": 7}
RETRY_AFTER = 1.0
REPLY_TEXT = "Yes please, the blue one"


@dataclass
class Callback:
    due: float
    url: str
    body: bytes
    kind: str
    tries: int = 0


@dataclass
class Stats:
    sends: int = 0
    first_send: float | None = None
    last_send: float | None = None
    due: int = 0
    done: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    last_due: float | None = None
    last_done: float | None = None
    lags: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lags = sorted(self.lags)
        return {
            "sends": self.sends,
            "first_send": self.first_send,
            "last_send": self.last_send,
            "due": self.due,
            "done": self.done,
            "by_kind": self.by_kind,
            "refused": self.refused,
            "retries": self.retries,
            "last_due": self.last_due,
            "last_done": self.last_done,
            "lag_median": statistics.median(lags) if lags else None,
            "lag_p99": lags[int(len(lags) * 0.99)] if lags else None,
            "lag_max": lags[-1] if lags else None,
            "now": time.monotonic(),
        }


class Gateway:
    def __init__(self, options: argparse.Namespace) -> None:
        self.latency: float = options.latency
        self.delays = dict(zip(STATUS_CODES, options.delays, strict=True))
        self.reply_delay: float = options.reply_delay
        self.reply_every: int = options.reply_every
        self.inbound_url: str = options.inbound_url
        self.concurrency: int = options.concurrency
        self.ids = itertools.count(10_000_000)
        # One FIFO per delay: sends are answered in order, so each stays sorted by due time.
        self.waiting: dict[str, deque[Callback]] = {
            kind: deque() for kind in (*STATUS_CODES, "reply", "retry")
        }
        self.ready: asyncio.Queue[Callback] = asyncio.Queue()
        self.stats = Stats()

    # -- serving sends ---------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                method, path, body = request
                if method == "GET" and path == "/stats":
                    answer = json.dumps(self.stats.as_dict()).encode()
                elif method == "POST" and path == SEND_PATH:
                    await asyncio.sleep(self.latency)
                    answer = self.accept(json.loads(body))
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def accept(self, send: dict[str, Any]) -> bytes:
        message_id = next(self.ids)
        now = time.monotonic()
        stats = self.stats
        stats.sends += 1
        stats.first_send = stats.first_send or now
        stats.last_send = now
        url = send.get("callback_url")
        if url:
            for kind, code in STATUS_CODES.items():
                body = json.dumps({"message_id": message_id, "status": code}).encode()
                self.schedule(Callback(now + self.delays[kind], url, body, kind), kind)
        if self.inbound_url and stats.sends % self.reply_every == 0:
            reply = {
                "source_addr": str(send.get("destination_addr")),
                "destination_addr": str(send.get("source_addr")),
                "message_id": f"in-{message_id}",
                "text": REPLY_TEXT,
            }
            callback = Callback(
                now + self.reply_delay, self.inbound_url, json.dumps(reply).encode(), "reply"
            )
            self.schedule(callback, "reply")
        return json.dumps({"message_id": message_id}).encode()

    def schedule(self, callback: Callback, queue: str) -> None:
        self.waiting[queue].append(callback)
        if queue == "retry":
            return
        self.stats.due += 1
        if self.stats.last_due is None or callback.due > self.stats.last_due:
            self.stats.last_due = callback.due

    # -- calling back ----------------------------------------------------------------------

    async def dispatch(self) -> None:
        """Move the callbacks that fell due to the senders, every few milliseconds."""
        while True:
            now = time.monotonic()
            for queue in self.waiting.values():
                while queue and queue[0].due <= now:
                    self.ready.put_nowait(queue.popleft())
            await asyncio.sleep(0.005)

    async def call_back(self) -> None:
        while True:
            callback = await self.ready.get()
            status = await post(callback.url, callback.body)
            now = time.monotonic()
            stats = self.stats
            if status == 200:
                stats.done += 1
                stats.by_kind[callback.kind] = stats.by_kind.get(callback.kind, 0) + 1
                stats.lags.append(now - callback.due)
                stats.last_done = now
            else:
                key = f"{callback.kind} {status}"
                stats.refused[key] = stats.refused.get(key, 0) + 1
                stats.retries += 1
                callback.tries += 1
                callback.due = now + RETRY_AFTER
                self.schedule(callback, "retry")


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _version = line.decode("latin-1").split(" ", 2)
    length = 0
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return method, path, body


async def post(url: str, body: bytes) -> int:
    """POST ``body`` as JSON on a new connection; the answer's status, 0 when none came."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    except OSError:
        return 0
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
            + body
        )
        status_line = await reader.readline()
        length = 0
        while True:  # the headers; then the body, and the connection is closed at once
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return int(status_line.split()[1]) if status_line else 0
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def main(options: argparse.Namespace) -> None:
    gateway = Gateway(options)
    server = await asyncio.start_server(
        gateway.serve, "127.0.0.1", options.port, backlog=512, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    sys.stdout.close()
    workers = [asyncio.create_task(gateway.call_back()) for _ in range(gateway.concurrency)]
    workers.append(asyncio.create_task(gateway.dispatch()))
    async with server:
        await server.serve_forever()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.050, help="Seconds per send.")
    parser.add_argument(
        "--delays",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.5, 1.0, 2.0],
        help="Seconds after a send's answer that sent, delivered and seen are called back.",
    )
    parser.add_argument("--reply-delay", type=float, default=3.0)
    parser.add_argument("--reply-every", type=int, default=20, help="1 in N sends (20: 5%%).")
    parser.add_argument("--inbound-url", default="", help="Where replies go; none when empty.")
    parser.add_argument("--concurrency", type=int, default=16, help="Callbacks in flight.")
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse()))
