"""State and rules of the sandbox gateway; the Django views in ``views.py`` only translate HTTP.

The sandbox validates a send exactly as DecisionTelecom's document describes and answers in the
provider's shapes: ``{"message_id": N}`` on success, ``{"name", "message", "code", "status"}`` on
error. A bad or missing parameter ``X`` is HTTP 400 ``{"name": "Invalid Parameter: X", "message":
"Empty parameter or parameter validation error", "code": 1, "status": 400}``.

Every accepted message then moves through status steps, one every ``SANDBOX_CALLBACK_DELAY``
seconds (``settings.DJANGO_WHATSAPP["SANDBOX_CALLBACK_DELAY"]``, default 1.0, read at each send):
step *k* happens ``k * delay`` after acceptance. Until the first step the status is 6 (pending).
When the message carries a ``callback_url``, a daemon thread POSTs ``{"message_id": N, "status":
CODE}`` there as each step happens; the status endpoint reports the same steps at the same times.

The recipient's last four digits choose the outcome, so every failure is reproducible:

========  =============================================================================
suffix    outcome
========  =============================================================================
``0001``  HTTP 400 ``Invalid Parameter: destination_addr`` (code 1)
``0002``  HTTP 402 ``Topup balance is required`` / ``User balance is empty`` (code 3)
``0003``  HTTP 500 ``Internal server error`` (code 2)
``0004``  HTTP 429 ``Too Many Requests`` / ``Rate limit exceeded`` (code 0), ``Retry-After: 1``
``0005``  text and media (types 1, 2): HTTP 400 ``Service Unavailable``, the 24-hour
          customer-service window is closed (code 7, kept apart from the server-error codes
          2, 4, 5, 6); templates (type 4) are accepted like any other number
``0006``  accepted; steps ``sent`` (0), then ``failed`` (4)
``0007``  accepted; one step ``rejected`` (2)
other     accepted; steps ``sent`` (0), ``delivered`` (1), ``seen`` (7)
========  =============================================================================

With ``SANDBOX_ENFORCE_WINDOW`` on (``settings.DJANGO_WHATSAPP``, default off, read at each send)
the sandbox also keeps the 24-hour customer-service window as the gateway does: a text or image
to a number that has not written in the last 24 hours is refused with the ``Service Unavailable``
error above; templates always pass. A number "writes" when the sandbox delivers a customer's
message from it to the project (:meth:`Gateway.deliver_inbound`, the ``simulate-inbound``
endpoint, ``manage.py whatsapp_sandbox_inbound`` and the admin's *Simulate a customer reply*):
it POSTs ``{"message_id", "source_addr" (the customer), "destination_addr" (us),
"message_type", "text", "file_url", "timestamp"}`` to the project's inbound URL.

Message ids strictly increase over the life of the process and do not repeat across restarts:
each is the current time in milliseconds, or the previous id plus one if that is larger.

The state lives in the module-level :data:`gateway`; tests call :meth:`Gateway.reset` and
:meth:`Gateway.wait_idle`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple, TypeGuard
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..numbers import mask_number
from ..signing import mask_url
from . import CALLBACK, INBOUND, is_project_url

logger = logging.getLogger("django_whatsapp.sandbox")

__all__ = [
    "DEFAULT_CALLBACK_DELAY",
    "MAX_MESSAGES",
    "Gateway",
    "InboundDelivery",
    "NotProjectURL",
    "ProviderStatus",
    "SandboxMessage",
    "SandboxResponse",
    "callback_delay",
    "enforce_window",
    "gateway",
    "invalid_parameter",
    "is_authorized",
    "load_body",
    "unauthorized",
]

DEFAULT_CALLBACK_DELAY = 1.0
#: Oldest messages are forgotten beyond this many, so a long-running demo does not grow forever.
MAX_MESSAGES = 10_000
#: How long after a customer's message the sandbox takes a text or image to them.
WINDOW_SECONDS = 24 * 3600
CALLBACK_TIMEOUT = (2, 5)
CALLBACK_USER_AGENT = "django-whatsapp-sandbox"

MAX_ADDR_CHARS = 20
MAX_TEXT_CHARS = 4096
MESSAGE_TYPES = (1, 2, 4)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class ProviderStatus(IntEnum):
    """The provider's message status codes."""

    SENT = 0
    DELIVERED = 1
    REJECTED = 2
    ERROR = 3
    FAILED = 4
    DELETED = 5
    PENDING = 6
    SEEN = 7


@dataclass(frozen=True)
class InboundDelivery:
    """A customer's message the sandbox delivered to the project's inbound URL, and the answer."""

    message_id: int
    url: str
    payload: dict[str, Any]
    http_status: int | None
    answer: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


class SandboxResponse(NamedTuple):
    """What an endpoint answers: HTTP status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class SandboxMessage:
    """An accepted message and its planned status steps (``steps[k]`` at ``(k + 1) * delay``)."""

    message_id: int
    payload: dict[str, Any]
    accepted_at: float  # time.monotonic()
    delay: float
    steps: tuple[ProviderStatus, ...]
    callback_url: str | None

    def step_time(self, index: int) -> float:
        """The monotonic time at which ``steps[index]`` happens."""
        return self.accepted_at + (index + 1) * self.delay

    def status_at(self, now: float) -> ProviderStatus:
        """The latest step whose time has passed, or pending before the first."""
        current = ProviderStatus.PENDING
        for index, step in enumerate(self.steps):
            if self.step_time(index) <= now:
                current = step
        return current


# --- provider-shaped errors -------------------------------------------------------------------


def _error(
    http_status: int, name: str, message: str, code: int, headers: dict[str, str] | None = None
) -> SandboxResponse:
    body = {"name": name, "message": message, "code": code, "status": http_status}
    return SandboxResponse(http_status, body, headers or {})


def invalid_parameter(param: str) -> SandboxResponse:
    return _error(
        400, f"Invalid Parameter: {param}", "Empty parameter or parameter validation error", 1
    )


class NotProjectURL(ValueError):
    """A URL the sandbox will not call: not this project's own callback or inbound URL."""


def not_project_url(param: str, what: str) -> SandboxResponse:
    """400 for a ``param`` naming a URL the sandbox will not call (nothing was fetched)."""
    return _error(
        400,
        f"Invalid Parameter: {param}",
        f"The sandbox only calls this project's own {what} URL (CALLBACK_BASE_URL followed by "
        f"the app's signed {what} path); nothing was fetched.",
        1,
    )


def unauthorized() -> SandboxResponse:
    return _error(
        401,
        "Unauthorized",
        "Access key is missing or invalid",
        401,
        {"WWW-Authenticate": 'Basic realm="django-whatsapp sandbox"'},
    )


def _insufficient_balance() -> SandboxResponse:
    return _error(402, "Topup balance is required", "User balance is empty", 3)


def _server_error() -> SandboxResponse:
    return _error(
        500,
        "Internal server error",
        "The server encountered an unexpected condition which prevented it from fulfilling "
        "the request",
        2,
    )


def _rate_limited() -> SandboxResponse:
    return _error(429, "Too Many Requests", "Rate limit exceeded", 0, {"Retry-After": "1"})


def _window_closed() -> SandboxResponse:
    return _error(
        400,
        "Service Unavailable",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number. In this case, you can only send a template message",
        7,
    )


# --- request helpers --------------------------------------------------------------------------


def is_authorized(header: str | None) -> bool:
    """True for ``Authorization: Basic <anything non-empty>``; the sandbox accepts any key."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower() == "basic" and bool(credentials.strip())


def load_body(raw: bytes) -> object:
    """Decode a UTF-8 JSON body; anything undecodable becomes ``None`` (not an object)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def callback_delay() -> float:
    """``SANDBOX_CALLBACK_DELAY`` from ``settings.DJANGO_WHATSAPP``, read now."""
    config = getattr(settings, "DJANGO_WHATSAPP", None) or {}
    value = config.get("SANDBOX_CALLBACK_DELAY", DEFAULT_CALLBACK_DELAY)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ImproperlyConfigured(
            "DJANGO_WHATSAPP['SANDBOX_CALLBACK_DELAY'] must be a number of seconds, zero or more."
        )
    return float(value)


def enforce_window() -> bool:
    """``SANDBOX_ENFORCE_WINDOW`` from ``settings.DJANGO_WHATSAPP``, read now."""
    config = getattr(settings, "DJANGO_WHATSAPP", None) or {}
    value = config.get("SANDBOX_ENFORCE_WINDOW", False)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(
            "DJANGO_WHATSAPP['SANDBOX_ENFORCE_WINDOW'] must be True or False."
        )
    return value


def _our_number() -> str:
    config = getattr(settings, "DJANGO_WHATSAPP", None) or {}
    value = config.get("DEFAULT_SOURCE_ADDR")
    return value if isinstance(value, str) and value else "sandbox"


# --- validation -------------------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: object, max_chars: int, *, required: bool = True) -> bool:
    if not isinstance(value, str) or len(value) > max_chars:
        return False
    return bool(value.strip()) or not required


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str) or not value or value != value.strip():
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _is_image_url(value: object) -> bool:
    return (
        _is_http_url(value)
        and isinstance(value, str)
        and urlsplit(value).path.lower().endswith(IMAGE_EXTENSIONS)
    )


def _destination_digits(value: object) -> str | None:
    """The recipient as a digit string, or None when it is not 1-20 digits."""
    if _is_int(value):
        digits = str(value)
    elif isinstance(value, str):
        digits = value
    else:
        return None
    if not (1 <= len(digits) <= MAX_ADDR_CHARS) or not (digits.isascii() and digits.isdigit()):
        return None
    return digits


def _nonempty_str(mapping: Mapping[str, Any], key: str) -> bool:
    value = mapping.get(key)
    return isinstance(value, str) and bool(value.strip())


def _valid_template_params(value: object) -> bool:
    """A string holding the JSON of the full template object, as the provider document shows."""
    if not isinstance(value, str):
        return False
    try:
        params = json.loads(value)
    except (ValueError, RecursionError):
        return False
    if not isinstance(params, dict):
        return False
    to = params.get("to")
    if not (_nonempty_str(params, "to") or (_is_int(to) and to >= 0)):
        return False
    if params.get("type") != "template":
        return False
    template = params.get("template")
    if not isinstance(template, dict):
        return False
    if not (_nonempty_str(template, "namespace") and _nonempty_str(template, "name")):
        return False
    language = template.get("language")
    if not (
        isinstance(language, dict)
        and _nonempty_str(language, "policy")
        and _nonempty_str(language, "code")
    ):
        return False
    return "components" not in template or isinstance(template["components"], list)


def _validate_send(payload: dict[str, Any]) -> tuple[str, int] | SandboxResponse:
    """Check a send body; answer ``(destination digits, message_type)`` or the error."""
    if not _is_text(payload.get("source_addr"), MAX_ADDR_CHARS):
        return invalid_parameter("source_addr")
    destination = _destination_digits(payload.get("destination_addr"))
    if destination is None:
        return invalid_parameter("destination_addr")
    message_type = payload.get("message_type")
    if not _is_int(message_type) or message_type not in MESSAGE_TYPES:
        return invalid_parameter("message_type")
    if message_type == 1:
        if not _is_text(payload.get("text"), MAX_TEXT_CHARS):
            return invalid_parameter("text")
    elif message_type == 2:
        if not _is_image_url(payload.get("file_url")):
            return invalid_parameter("file_url")
        caption = payload.get("text")
        if caption is not None and not _is_text(caption, MAX_TEXT_CHARS, required=False):
            return invalid_parameter("text")
    else:
        if not _nonempty_str(payload, "template_name"):
            return invalid_parameter("template_name")
        if not _valid_template_params(payload.get("template_params")):
            return invalid_parameter("template_params")
    callback_url = payload.get("callback_url")
    if callback_url is not None and not _is_http_url(callback_url):
        return invalid_parameter("callback_url")
    if callback_url is not None and not is_project_url(callback_url, CALLBACK):
        return not_project_url("callback_url", "status callback")
    return destination, message_type


def _outcome(destination: str, message_type: int) -> SandboxResponse | tuple[ProviderStatus, ...]:
    """The scripted refusal for this recipient, or the status steps of an accepted message."""
    suffix = destination[-4:]
    if suffix == "0001":
        return invalid_parameter("destination_addr")
    if suffix == "0002":
        return _insufficient_balance()
    if suffix == "0003":
        return _server_error()
    if suffix == "0004":
        return _rate_limited()
    if suffix == "0005" and message_type in (1, 2):
        return _window_closed()
    if suffix == "0006":
        return (ProviderStatus.SENT, ProviderStatus.FAILED)
    if suffix == "0007":
        return (ProviderStatus.REJECTED,)
    return (ProviderStatus.SENT, ProviderStatus.DELIVERED, ProviderStatus.SEEN)


def _message_id_param(payload: object) -> int | None:
    if not isinstance(payload, dict):
        return None
    value = payload.get("message_id")
    if _is_int(value):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


# --- the gateway ------------------------------------------------------------------------------


class Gateway:
    """The sandbox's state: accepted messages, the id counter and the callback threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id = 0
        self._messages: OrderedDict[int, SandboxMessage] = OrderedDict()
        #: the time (``time.time()``) each number last wrote, oldest first
        self._inbound: OrderedDict[str, float] = OrderedDict()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        #: set while callbacks may go; cleared by hold_callbacks
        self._go = threading.Event()
        self._go.set()

    # endpoints

    def submit(self, payload: object) -> SandboxResponse:
        """Handle a send body (the decoded JSON): accept it, or refuse it as the provider would."""
        if not isinstance(payload, dict):
            return invalid_parameter("body")
        checked = _validate_send(payload)
        if isinstance(checked, SandboxResponse):
            return checked
        destination, message_type = checked
        outcome = _outcome(destination, message_type)
        if (
            not isinstance(outcome, SandboxResponse)
            and message_type in (1, 2)
            and enforce_window()
            and not self.window_open(destination)
        ):
            outcome = _window_closed()
        if isinstance(outcome, SandboxResponse):
            logger.info(
                "Sandbox refused a type %s message to %s: %s",
                message_type,
                mask_number(destination),
                outcome.body["name"],
            )
            return outcome
        delay = callback_delay()
        callback_url = payload.get("callback_url")
        with self._lock:
            message_id = self._next_id()
            message = SandboxMessage(
                message_id=message_id,
                payload=dict(payload),
                accepted_at=time.monotonic(),
                delay=delay,
                steps=outcome,
                callback_url=callback_url,
            )
            self._messages[message_id] = message
            while len(self._messages) > MAX_MESSAGES:
                self._messages.popitem(last=False)
            if callback_url is not None:
                self._start_callbacks(message)
        logger.info(
            "Sandbox accepted message %s (type %s) to %s; steps %s every %.3gs%s",
            message_id,
            message_type,
            mask_number(destination),
            "/".join(step.name.lower() for step in outcome),
            delay,
            ", with callbacks" if callback_url is not None else "",
        )
        return SandboxResponse(200, {"message_id": message_id}, {})

    def status(self, payload: object) -> SandboxResponse:
        """Handle a status body ``{"message_id": N}``; unknown ids are an invalid parameter."""
        message_id = _message_id_param(payload)
        message = None if message_id is None else self.message(message_id)
        if message is None:
            return invalid_parameter("message_id")
        current = message.status_at(time.monotonic())
        return SandboxResponse(200, {"message_id": message.message_id, "status": int(current)}, {})

    def simulate_inbound(self, payload: object) -> SandboxResponse:
        """Handle ``{"from", "text", "image", "to", "url"}``: deliver a customer's message to the
        project's inbound ``url`` (see :meth:`deliver_inbound`) and answer what it said."""
        if not isinstance(payload, dict):
            return invalid_parameter("body")
        try:
            delivery = self.deliver_inbound(
                payload.get("url"),
                payload.get("from"),
                text=payload.get("text") or "",
                image=payload.get("image") or "",
                to=payload.get("to") or "",
            )
        except NotProjectURL:
            return not_project_url("url", "inbound")
        except ValueError as error:
            return invalid_parameter(str(error))
        body = {
            "message_id": delivery.message_id,
            "url": delivery.url,
            "http_status": delivery.http_status,
            "answer": delivery.answer,
            "error": delivery.error,
        }
        return SandboxResponse(200 if delivery.ok else 502, body, {})

    def deliver_inbound(
        self,
        url: object,
        sender: object,
        *,
        text: object = "",
        image: object = "",
        to: object = "",
        origin: str | None = None,
    ) -> InboundDelivery:
        """A customer (``sender``, digits) writes ``text`` and/or an ``image`` URL to us (``to``,
        ``DEFAULT_SOURCE_ADDR`` by default): the sandbox remembers that the number wrote (its
        window opens) and POSTs the message to ``url``, the project's inbound URL, waiting for the
        answer. Raises ``ValueError`` naming the bad parameter; :class:`NotProjectURL` when
        ``url`` is not the project's own inbound URL (on ``CALLBACK_BASE_URL``'s origin, or on
        ``origin`` when the project's code passes its own address): nothing is fetched."""
        number = _destination_digits(sender.lstrip("+") if isinstance(sender, str) else sender)
        if number is None:
            raise ValueError("from")
        if not _is_http_url(url) or not isinstance(url, str):
            raise ValueError("url")
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            raise ValueError("text")
        if image and not _is_image_url(image):
            raise ValueError("image")
        if not text.strip() and not image:
            raise ValueError("text")
        ours = to if isinstance(to, str) and to else _our_number()
        if len(ours) > MAX_ADDR_CHARS:
            raise ValueError("to")
        if not is_project_url(url, INBOUND, origin=origin):
            raise NotProjectURL("url")
        with self._lock:
            message_id = self._next_id()
        payload: dict[str, Any] = {
            "message_id": message_id,
            "source_addr": number,
            "destination_addr": ours,
            "message_type": 2 if image else 1,
            "text": text,
            "timestamp": int(time.time()),
        }
        if image:
            payload["file_url"] = image
        self.record_inbound(number)
        try:
            response = requests.post(
                url,
                json=payload,
                timeout=CALLBACK_TIMEOUT,
                headers={"User-Agent": CALLBACK_USER_AGENT},
            )
        except requests.RequestException as error:
            logger.warning(
                "Sandbox inbound message %s to %s failed: %s",
                message_id,
                mask_url(url),
                type(error).__name__,
            )
            return InboundDelivery(message_id, url, payload, None, None, f"{type(error).__name__}")
        answer: Any = load_body(response.content)
        if answer is None:
            answer = response.text[:1000]
        logger.info(
            "Sandbox delivered inbound message %s from %s; the project answered HTTP %s",
            message_id,
            mask_number(number),
            response.status_code,
        )
        return InboundDelivery(message_id, url, payload, response.status_code, answer)

    def record_inbound(self, number: str, at: float | None = None) -> None:
        """Remember that ``number`` wrote at ``at`` (``time.time()``, now by default)."""
        when = time.time() if at is None else at
        with self._lock:
            previous = self._inbound.pop(number, None)
            self._inbound[number] = when if previous is None else max(when, previous)
            while len(self._inbound) > MAX_MESSAGES:
                self._inbound.popitem(last=False)

    def last_inbound(self, number: str) -> float | None:
        """When ``number`` last wrote (``time.time()``), if the sandbox remembers it."""
        with self._lock:
            return self._inbound.get(number)

    def window_open(self, number: str, now: float | None = None) -> bool:
        """Whether ``number`` wrote in the last 24 hours."""
        last = self.last_inbound(number)
        current = time.time() if now is None else now
        return last is not None and current - last < WINDOW_SECONDS

    # inspection and test support

    def message(self, message_id: int) -> SandboxMessage | None:
        """The accepted message with this id, if the sandbox still remembers it."""
        with self._lock:
            return self._messages.get(message_id)

    def messages(self) -> list[SandboxMessage]:
        """Every remembered message, oldest first."""
        with self._lock:
            return list(self._messages.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every callback thread has finished; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                self._threads = [thread for thread in self._threads if thread.is_alive()]
                pending = list(self._threads)
            if not pending:
                return True
            for thread in pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                thread.join(remaining)

    def reset(self, timeout: float = 5.0) -> None:
        """Forget every message and every customer's window, and cancel the callbacks not yet
        sent (ids keep increasing)."""
        with self._lock:
            stop, self._stop = self._stop, threading.Event()
            go = self._go
            self._messages.clear()
            self._inbound.clear()
        stop.set()
        go.set()  # held callbacks wake, see the stop and end
        self.wait_idle(timeout)

    @contextmanager
    def hold_callbacks(self) -> Iterator[None]:
        """Hold every callback back until the block ends, then let them go (each at its time,
        or at once when that has passed). For tests on SQLite in memory, where a live server's
        threads share the test's one connection: nothing is stored behind the test's back
        while it records a send."""
        with self._lock:
            go = self._go = threading.Event()
        try:
            yield
        finally:
            with self._lock:
                if self._go is go:
                    self._go = threading.Event()
                    self._go.set()
            go.set()

    # internals

    def _next_id(self) -> int:
        """Called with the lock held."""
        self._last_id = max(self._last_id + 1, time.time_ns() // 1_000_000)
        return self._last_id

    def _start_callbacks(self, message: SandboxMessage) -> None:
        """Called with the lock held."""
        thread = threading.Thread(
            target=_deliver_callbacks,
            args=(message, self._stop, self._go),
            name=f"sandbox-callbacks-{message.message_id}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()


def _deliver_callbacks(message: SandboxMessage, stop: threading.Event, go: threading.Event) -> None:
    """POST each step to the message's callback_url when its time comes and ``go`` is set (see
    :meth:`Gateway.hold_callbacks`); never raises."""
    assert message.callback_url is not None  # noqa: S101 - only started for messages with one
    for index, step in enumerate(message.steps):
        wait = message.step_time(index) - time.monotonic()
        if stop.wait(max(wait, 0.0)):
            return
        go.wait()
        if stop.is_set():
            return
        body = {"message_id": message.message_id, "status": int(step)}
        try:
            response = requests.post(
                message.callback_url,
                json=body,
                timeout=CALLBACK_TIMEOUT,
                headers={"User-Agent": CALLBACK_USER_AGENT},
            )
            logger.info(
                "Sandbox callback for message %s (%s) answered HTTP %s",
                message.message_id,
                step.name.lower(),
                response.status_code,
            )
        except Exception as error:
            # One line, no traceback: the request's URL (a credential) is in the exception.
            logger.warning(
                "Sandbox callback for message %s (%s) to %s failed: %s; the message keeps its "
                "last status (is CALLBACK_BASE_URL this server's origin? see manage.py check)",
                message.message_id,
                step.name.lower(),
                mask_url(message.callback_url),
                callback_failure_reason(error),
            )


def callback_failure_reason(error: BaseException) -> str:
    """Why a callback did not arrive, in a few words: the innermost cause's kind (e.g.
    ``NameResolutionError``), never its text (which repeats the URL and its signature)."""
    root = error
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect ({type(root).__name__})"
    return type(root).__name__


#: The sandbox's one gateway, shared by the views and the tests.
gateway = Gateway()
