"""The live server's requests one at a time, for the browser tests on SQLite.

With the in-memory SQLite database, every thread of the live server uses the test's one
connection. Two requests at once (two sandbox callbacks, a callback and a page) broke each
other's transactions on it: "no such savepoint", ``on_commit()`` refused in the middle of
another request's transaction, then its tables locked for every later test (CI failed so twice
on a slower machine). :class:`SerialRequests` lets one request at a time reach the app. Two
kinds pass without waiting, or they would wait for the request that is waiting for them: the
sandbox gateway's (it is called by the app from inside a request and keeps its state in
memory), and a request the sandbox makes from inside a request (the inbound message it delivers
while the admin's *simulate* waits for the answer), which :func:`post` marks.

The test's own thread shares that connection too: a query of the test's (``refresh_from_db``
while the sandbox's callbacks arrive) in the middle of a request's transaction found the table
locked (CI failed so once). :func:`test_thread_queries_wait` makes each of its queries wait for
the request being served, and hold the next one off while it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from django.http import HttpRequest, HttpResponse

#: Held by the request being served.
LOCK = threading.RLock()
_serving = threading.local()
#: The header :func:`post` adds to a request made while this thread serves one.
NESTED_HEADER = "X-Browser-Tests-Nested"
_real_post = requests.post


class SerialRequests:
    """Middleware: one request at a time, except the sandbox's and nested ones."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nested = request.headers.get(NESTED_HEADER) == "1"
        if nested or request.path.startswith("/sandbox/"):
            return self.get_response(request)
        with LOCK:
            _serving.active = True
            try:
                return self.get_response(request)
            finally:
                _serving.active = False


def test_thread_queries_wait(thread_id: int) -> Callable[..., Any]:
    """A database execute wrapper (``connection.execute_wrapper``): the queries of the thread
    ``thread_id`` (the test's) run under :data:`LOCK`; the server's threads run theirs as before
    (the wrapper is on the connection they share, and a nested request must not wait)."""

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if threading.get_ident() != thread_id:
            return execute(sql, params, many, context)
        with LOCK:
            return execute(sql, params, many, context)

    return wrapper


def post(*args: Any, **kwargs: Any) -> requests.Response:
    """``requests.post`` (which the sandbox uses), marking a request made while this thread
    serves one: it must not wait for the lock this thread holds."""
    if getattr(_serving, "active", False):
        kwargs["headers"] = {**(kwargs.get("headers") or {}), NESTED_HEADER: "1"}
    return _real_post(*args, **kwargs)
