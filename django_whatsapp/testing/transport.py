"""The in-process gateway behind ``BASE_URL = "memory://"``: a ``requests`` transport adapter.

The client (:mod:`django_whatsapp.client`) mounts :class:`MemoryAdapter` on its session for URLs
starting with ``memory:``, so a send runs the client's real code: the JSON encoding, the
``Authorization`` header, the retries and the error parsing. The adapter answers as the real
gateway does (an HTTP status and a JSON body), from the one process-wide :data:`gateway`, which
keeps the outbox.

The app registers the adapter when it starts (:func:`register`); this module imports no model.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from ..client import register_transport
from ..exceptions import (
    AuthenticationFailed,
    GatewayServerError,
    InsufficientBalance,
    InvalidParameter,
    RateLimited,
    ServiceWindowClosed,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
)

if TYPE_CHECKING:
    from ..models import Message

#: The URL prefix served in process.
PREFIX = "memory:"

# Provider ids: unique and increasing across the process (and across test runs, as they start
# from the clock), never reset: a project's own unique constraints never see one twice.
_ids = itertools.count(time.time_ns() // 1000)
_ids_lock = threading.Lock()


def next_provider_id() -> int:
    """A provider message id never handed out before in this process."""
    with _ids_lock:
        return next(_ids)


@dataclass
class SentMessage:
    """One send the memory gateway took: what went on the wire, and the id it answered."""

    #: The URL the request went to.
    url: str
    #: The request body, parsed from the JSON that went on the wire.
    body: dict[str, Any]
    #: The request body exactly as it went on the wire.
    raw: bytes
    #: The request headers, without ``Authorization``.
    headers: dict[str, str]
    #: The ``message_id`` the gateway answered.
    provider_message_id: int
    _message: Message | None = field(default=None, repr=False)

    @property
    def message(self) -> Message | None:
        """The :class:`~django_whatsapp.models.Message` this request sent (looked up by its
        provider id once the services recorded it), or ``None`` for a bare client send."""
        if self._message is None:
            from ..models import Message  # the app registry is ready by the time it is read

            self._message = Message.objects.filter(
                provider_message_id=self.provider_message_id
            ).first()
        return self._message

    @property
    def to(self) -> str:
        """The recipient, as sent."""
        return str(self.body.get("destination_addr", ""))

    @property
    def text(self) -> str:
        """The text (or an image's caption), as sent."""
        return str(self.body.get("text", ""))


@dataclass
class MemoryRequest:
    """One request that reached the memory gateway, answered or failed."""

    url: str
    endpoint: str
    body: Any
    raw: bytes
    #: The HTTP status answered, or ``None`` when the request failed without an answer.
    http_status: int | None
    answer: Any


#: The answer the real gateway gives for each error, as (HTTP status, name, message, code).
_ANSWERS: dict[type[WhatsAppError], tuple[int, str, str, int]] = {
    RateLimited: (429, "Too Many Requests", "Rate limit exceeded", 0),
    InvalidParameter: (
        400,
        "Invalid Parameter: [text]",
        "Empty parameter or parameter validation error",
        1,
    ),
    InsufficientBalance: (402, "Topup balance is required", "User balance is empty", 3),
    ServiceWindowClosed: (
        400,
        "Service Unavailable",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number. In this case, you can only send a template message",
        7,
    ),
    GatewayServerError: (
        500,
        "Internal server error",
        "The server encountered an unexpected condition which prevented it from fulfilling "
        "the request",
        2,
    ),
    AuthenticationFailed: (401, "Unauthorized", "Access key is missing or invalid", 401),
}


def _failure_answer(error: WhatsAppError) -> tuple[int, Any, dict[str, str]]:
    """The HTTP status, body and headers with which the real gateway answers ``error``."""
    for cls in type(error).__mro__:
        if cls in _ANSWERS:
            http_status, name, message, code = _ANSWERS[cls]
            break
    else:
        http_status, name, message, code = (422, error.default_name, error.default_message, 99)
    given = error.__dict__
    if given.get("name") and error.name != error.default_name:
        name = error.name
    if given.get("message") and error.message != error.default_message:
        message = error.message
    code = error.code if error.code is not None else code
    http_status = error.http_status or http_status
    status = error.status if error.status is not None else http_status
    body = {"name": name, "message": message, "code": code, "status": status}
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited | GatewayServerError):
        # Retried at once (no real sleep in a test) unless the error asks for a wait.
        headers["Retry-After"] = str(error.retry_after or 0)
    return http_status, body, headers


class MemoryGateway:
    """The in-process gateway's state: the outbox, failures to come and statuses to report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Every send the gateway took, in order (a list: ``len``, ``[0]``, ``clear()``).
        self.outbox: list[SentMessage] = []
        #: Every request that reached the gateway, sends and status polls, answered or failed.
        self.requests: list[MemoryRequest] = []
        self._failures: dict[str, deque[WhatsAppError]] = {"send": deque(), "status": deque()}
        self._statuses: dict[int, int] = {}
        self._issued: set[int] = set()

    def __repr__(self) -> str:
        return f"MemoryGateway(outbox={len(self.outbox)}, requests={len(self.requests)})"

    def reset(self) -> None:
        """Forget the outbox, the requests, the failures to come and the statuses set (the
        lists are emptied in place, so references to them stay good). Provider ids go on
        increasing."""
        with self._lock:
            self.outbox.clear()
            self.requests.clear()
            for failures in self._failures.values():
                failures.clear()
            self._statuses.clear()

    def fail_next(
        self,
        error: type[WhatsAppError] | WhatsAppError,
        times: int = 1,
        *,
        endpoint: str = "send",
    ) -> None:
        """Make the next ``times`` requests to ``endpoint`` (``"send"`` or ``"status"``) fail
        with ``error`` (a class of :mod:`django_whatsapp.exceptions`, or an instance whose
        ``name``, ``message``, ``code``, ``http_status`` and ``retry_after`` shape the answer).

        The failure is answered as the real gateway answers it (an HTTP status and a JSON body),
        so the client's own parsing raises the same class. A :class:`TransportError` is no
        answer at all: with ``maybe_delivered=False`` the connection fails (the client retries
        it), with ``maybe_delivered=True`` the answer never comes (never retried). Each retry
        is a request: with ``MAX_RETRIES`` above 0, retryable errors need ``times`` above it
        to make a send fail (:func:`~django_whatsapp.testing.override_whatsapp` sets 0).
        """
        if endpoint not in self._failures:
            raise ValueError("endpoint must be 'send' or 'status'")
        if times < 1:
            raise ValueError("times must be at least 1")
        if isinstance(error, type):
            if not issubclass(error, WhatsAppError):
                raise TypeError("fail_next takes a WhatsAppError class or instance")
            if issubclass(error, TransportError):
                raise TypeError(
                    "TransportError needs maybe_delivered: pass "
                    "TransportError(maybe_delivered=True) or (maybe_delivered=False)"
                )
            error = error()
        elif not isinstance(error, WhatsAppError):
            raise TypeError("fail_next takes a WhatsAppError class or instance")
        with self._lock:
            self._failures[endpoint].extend([error] * times)

    def set_status(self, message: Message | int, status: str | int) -> None:
        """Make status polls about ``message`` (a Message or its provider id) answer ``status``
        (a status name such as ``"delivered"``, or the provider's code 0-7)."""
        from ..status_rule import PROVIDER_CODES, normalize_status

        provider_id = message if isinstance(message, int) else message.provider_message_id
        if provider_id is None:
            raise ValueError("The message has no provider id: it was never accepted.")
        code = status if isinstance(status, int) else PROVIDER_CODES.get(normalize_status(status))
        if code is None or not 0 <= code <= 7:
            raise ValueError(f"{status!r} is not a status the gateway reports.")
        with self._lock:
            self._statuses[provider_id] = code
            self._issued.add(provider_id)

    # -- answering -----------------------------------------------------------------------------

    def handle(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: ``(HTTP status, JSON body, headers)``; raises a ``requests``
        exception for a transport failure."""
        raw = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        url = request.url or ""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        endpoint = "status" if isinstance(body, Mapping) and set(body) == {"message_id"} else "send"
        with self._lock:
            failure = self._failures[endpoint].popleft() if self._failures[endpoint] else None
        record = MemoryRequest(url, endpoint, body, raw, None, None)
        with self._lock:
            self.requests.append(record)
        if isinstance(failure, TransportError):
            if failure.maybe_delivered:
                raise requests.exceptions.ReadTimeout("memory gateway: the answer never came")
            raise requests.exceptions.ConnectTimeout("memory gateway: could not connect")
        if isinstance(failure, UnexpectedResponse):
            answer: tuple[int, Any, dict[str, str]] = (200, "<html>Bad gateway</html>", {})
        elif failure is not None:
            answer = _failure_answer(failure)
        elif not request.headers.get("Authorization"):
            answer = _failure_answer(AuthenticationFailed())
        elif not isinstance(body, Mapping):
            answer = _failure_answer(InvalidParameter(name="Invalid Parameter: body"))
        elif endpoint == "status":
            answer = self._status(body)
        else:
            answer = self._accept(url, body, raw, request)
        record.http_status, record.answer = answer[0], answer[1]
        return answer

    def _accept(
        self, url: str, body: Mapping[str, Any], raw: bytes, request: requests.PreparedRequest
    ) -> tuple[int, Any, dict[str, str]]:
        provider_id = next_provider_id()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        sent = SentMessage(url, dict(body), raw, headers, provider_id)
        with self._lock:
            self._issued.add(provider_id)
            self.outbox.append(sent)
        return 200, {"message_id": provider_id}, {}

    def _status(self, body: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        message_id = body.get("message_id")
        with self._lock:
            known = isinstance(message_id, int) and message_id in self._issued
            code = self._statuses.get(message_id, 0) if known else None  # type: ignore[arg-type]
        if code is None:
            return _failure_answer(InvalidParameter(name="Invalid Parameter: message_id"))
        return 200, {"message_id": message_id, "status": code}, {}


#: The one in-process gateway.
gateway = MemoryGateway()


class MemoryAdapter(requests.adapters.BaseAdapter):
    """Answers ``memory:`` requests from :data:`gateway`, as ``requests.Response`` objects."""

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        http_status, body, headers = gateway.handle(request)
        response = requests.Response()
        response.status_code = http_status
        response._content = (
            body.encode("utf-8")
            if isinstance(body, str)
            else json.dumps(body, ensure_ascii=False).encode("utf-8")
        )
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "text/html" if isinstance(body, str) else "application/json"}
        )
        response.headers.update(headers)
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        response.reason = "OK" if http_status < 400 else "Error"
        return response

    def close(self) -> None:
        """Nothing to close: no connection was opened."""


def register() -> None:
    """Serve ``memory:`` URLs in process (done when the app starts)."""
    register_transport(PREFIX, MemoryAdapter)
