"""HTTP to the DecisionTelecom WhatsApp gateway, and nothing else: no ORM, no signals.

One :class:`WhatsAppClient` holds one pooled :class:`requests.Session`. Every request has a timeout.
A client that makes its own session (the usual case: :func:`~django_whatsapp.services.get_client`,
:func:`~django_whatsapp.services.pooled_client`) reads the proxy and CA settings of the
environment once, prepares each URL's request once, and hands every send straight to the
session's transport adapter (requests' ``Session.request`` would merge the session's settings,
scan the environment and run hooks for each of thousands of identical sends: 0.99 against 0.61
ms of CPU a request here). A session given by the caller is used as it is, through
``session.post``: its own hooks, headers and cookies apply.
Sends that certainly did not reach the gateway (the connection could not be made) and answers
that say "try again" (429, 5xx) are retried with capped exponential backoff and jitter,
honouring ``Retry-After``. A send whose request went out but whose answer never came is never
retried: the gateway may have taken it.

Clients used from several threads at once (bulk sends, resync) can share a :class:`SharedBackoff`:
a 429 then pauses every sender, once, instead of each thread hammering the gateway on its own.
The gate is injected: :mod:`django_whatsapp.ratelimit` provides one that shares the gateway's
rate limit between processes through the Django cache.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters
import urllib3.exceptions
from requests.auth import AuthBase

from . import __version__
from .conf import WhatsAppSettings, get_settings
from .exceptions import (
    GatewayServerError,
    NotRequested,
    RateLimited,
    RateLimitUnavailable,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
    error_from_answer,
)

logger = logging.getLogger("django_whatsapp.client")

USER_AGENT = f"django-whatsapp/{__version__} python-requests/{requests.__version__}"
PROVIDER_STATUS_CODES = range(0, 8)


@dataclass(frozen=True)
class SendResult:
    """The gateway took the message: ``message_id`` is its id there."""

    message_id: int
    attempts: int
    body: dict[str, Any]


@dataclass(frozen=True)
class StatusResult:
    """A status report from the status endpoint; ``status`` is the provider's code (0-7)."""

    message_id: int
    status: int
    body: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits between half and all of
    ``min(cap, base * 2**(n-1))`` seconds, or what ``Retry-After`` asks (at most
    ``max_retry_after``).
    """

    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry);
        ``rand`` is a random number in [0, 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        # The exponent is bounded so that a large MAX_RETRIES cannot overflow a float.
        ceiling = min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), 64))
        return ceiling * (0.5 + min(max(rand, 0.0), 1.0) / 2)


class SharedBackoff:
    """One pause that every thread sending through a client keeps to: a rate limit slows every
    sender down instead of failing messages.

    Each request first passes the gate (:meth:`wait`), which returns a ticket. When the gateway
    answers 429, the thread that got it declares a pause of ``Retry-After`` seconds
    (:meth:`pause`); every thread then waits at the gate before its next request, and one of them
    sleeps the pause for all. A 429 answering a request that passed the gate before the current
    pause was declared is part of the same burst: it does not pause again. ``max_retries`` is how
    often a rate-limited request is retried (when ``MAX_RETRIES`` is lower), since waiting at the
    gate is what it is for.

    With ``max_in_flight``, the gate is also a limiter: at most that many requests are on their
    way at once, however many threads send (each holds a slot from :meth:`wait` until
    :meth:`release`), so threads may do their database work while others' requests are out.
    """

    def __init__(
        self,
        *,
        max_retries: int = 10,
        max_in_flight: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop_on_outage: bool = False,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_retries = max_retries
        #: With ``stop_on_outage``, the first request that finds the gateway failing (it could
        #: not be reached, or answered server errors, after its retries) stops the requests
        #: still waiting at the gate: they raise :class:`NotRequested` until
        #: :meth:`allow_requests` (a campaign's engine: its breaker tries again later).
        self.stop_on_outage = stop_on_outage
        self._stopped = False
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight) if max_in_flight else None
        self._clock = clock
        self._cond = threading.Condition()
        self._resume_at: float | None = None
        self._generation = 0
        self._sleeping = False
        #: How many pauses were declared (for reports and tests).
        self.pauses = 0

    def __repr__(self) -> str:
        return (
            f"SharedBackoff(pauses={self.pauses}, max_retries={self.max_retries}, "
            f"max_in_flight={self.max_in_flight})"
        )

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> int:
        """Take a slot (with ``max_in_flight``), then block while a pause is in force; return the
        ticket for the request about to go out. Call :meth:`release` once it is answered.

        One waiting thread sleeps the pause (with ``sleep``); the others wait for it to end.
        """
        if self._slots is not None:
            self._slots.acquire()
        try:
            if self._stopped:
                raise NotRequested()
            return self._pass(sleep)
        except BaseException:
            self.release()
            raise

    def stop_requests(self) -> None:
        """Hold back every request from now on (:class:`NotRequested`), until
        :meth:`allow_requests`."""
        self._stopped = True

    def allow_requests(self) -> None:
        self._stopped = False

    def rate_limit_retries(self) -> int:
        """How often a rate-limited request may be retried through this gate (at least
        ``MAX_RETRIES`` is always allowed). A subclass may answer "as long as some condition
        holds" (:class:`django_whatsapp.ratelimit.SharedRateLimit`: while a campaign runs)."""
        return self.max_retries

    def release(self) -> None:
        """Give back the slot taken by :meth:`wait`."""
        if self._slots is not None:
            self._slots.release()

    def _pass(self, sleep: Callable[[float], None]) -> int:
        with self._cond:
            while self._resume_at is not None:
                if self._sleeping:
                    self._cond.wait()
                    continue
                remaining = self._resume_at - self._clock()
                if remaining <= 0:
                    self._resume_at = None
                    break
                self._sleeping = True
                generation = self._generation
                self._cond.release()
                try:
                    sleep(remaining)
                finally:
                    self._cond.acquire()
                    self._sleeping = False
                    if self._generation == generation:  # not extended meanwhile: served
                        self._resume_at = None
                    self._cond.notify_all()
            return self._generation

    def pause(self, seconds: float, ticket: int) -> bool:
        """Declare a pause of ``seconds`` after a 429 to the request that held ``ticket``.

        Returns ``False`` (nothing changes) when a pause was declared since that request passed
        the gate: the answer belongs to the burst that pause already answers.
        """
        with self._cond:
            if ticket != self._generation:
                return False
            self._generation += 1
            self.pauses += 1
            self._resume_at = self._clock() + max(seconds, 0.0)
            return True


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP date is always in GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - now(), 0.0)


#: Errors raised while the request is being prepared, before anything is sent.
_NOT_SENT_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


class _KeyAuth(AuthBase):
    """``Authorization: Basic <base64(API_KEY)>``. Passing it as ``auth`` also keeps requests
    from replacing the header with credentials from a ``~/.netrc``."""

    def __init__(self, api_key: str) -> None:
        self._header = "Basic " + base64.b64encode(api_key.encode("utf-8")).decode("ascii")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "_KeyAuth('***')"


def _connect_failed(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the request certainly never reached the gateway."""
    if isinstance(
        exc,
        requests.exceptions.ConnectTimeout
        | requests.exceptions.SSLError
        # The proxy could not be reached, or would not open the tunnel: nothing went further.
        | requests.exceptions.ProxyError,
    ):
        return True
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


_NOT_JSON = object()


def _decode(response: requests.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return _NOT_JSON


#: The largest id a message's ``provider_message_id`` (a 64-bit signed integer in every
#: database) can hold; the gateway's ids are positive.
MAX_PROVIDER_ID = 2**63 - 1


def _as_int(value: Any) -> int | None:
    """A whole number given as a JSON number or a string of digits, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip()) if len(value.strip()) <= 30 else None
    return None


#: Transport adapters by URL prefix (such as ``"memory:"``), mounted on every client's session
#: whose URLs start with it: how :mod:`django_whatsapp.testing` answers ``BASE_URL =
#: "memory://"`` in process, through this client's own encoding and error parsing.
TRANSPORTS: dict[str, Callable[[], requests.adapters.BaseAdapter]] = {}


def register_transport(prefix: str, factory: Callable[[], requests.adapters.BaseAdapter]) -> None:
    """Serve URLs starting with ``prefix`` with an adapter made by ``factory``."""
    TRANSPORTS[prefix.lower()] = factory


def _as_id(value: Any) -> int | None:
    """A provider message id the database can hold (``1..MAX_PROVIDER_ID``), or ``None``: an
    id out of that range is not the documented answer."""
    number = _as_int(value)
    return number if number is not None and 0 < number <= MAX_PROVIDER_ID else None


def _long_digits(value: Any) -> bool:
    """A string of more digits than :func:`_as_int` converts."""
    return isinstance(value, str) and value.strip().isascii() and value.strip().isdigit()


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _outage(error: WhatsAppError) -> bool:
    """Whether an error says the gateway itself is failing, not this request: it could not be
    reached, or answered a server error."""
    if isinstance(error, TransportError):
        return not error.maybe_delivered
    return isinstance(error, GatewayServerError)


def _gate_failed(exc: Exception, attempts: int) -> RateLimitUnavailable:
    """The error for a gate (the shared rate limit's cache) that failed: no request was made
    for it. Only the failure's type is kept: its text may name the cache's address."""
    error = RateLimitUnavailable(
        "The cache that holds the shared rate limit could not be reached "
        f"({type(exc).__name__}): nothing was sent."
    )
    error.attempts = attempts
    return error


class _Route:
    """One URL's request, prepared once: the adapter that serves it, its URL and headers (the
    session's defaults, ours and the ``Authorization``), and what the adapter is given."""

    __slots__ = ("adapter", "cert", "headers", "proxies", "url", "verify")

    def __init__(
        self, session: requests.Session, url: str, headers: Mapping[str, str], auth: AuthBase
    ):
        prepared = session.prepare_request(
            requests.Request("POST", url, headers=headers, auth=auth)
        )
        self.url = prepared.url
        self.headers = prepared.headers
        self.adapter = session.get_adapter(url)
        self.proxies = dict(session.proxies)
        self.verify: bool | str = True if session.verify is None else session.verify
        self.cert = session.cert

    def post(self, data: bytes, timeout: tuple[float, float]) -> requests.Response:
        request = requests.PreparedRequest()
        request.method = "POST"
        request.url = self.url
        request.headers = self.headers.copy()
        request.headers["Content-Length"] = str(len(data))
        request.body = data
        response = self.adapter.send(
            request,
            stream=False,
            timeout=timeout,
            verify=self.verify,
            cert=self.cert,
            proxies=self.proxies,
        )
        response.content  # noqa: B018  read whole here, as Session.send does: a broken answer raises now
        return response

    def __repr__(self) -> str:  # the headers hold the API key
        return f"_Route({self.url!r})"


def _own_session(url: str, pool_size: int | None) -> requests.Session:
    """A session of the client's own: the environment's proxy and CA bundle for ``url`` read
    once (``trust_env`` off afterwards: no scan of ``os.environ``, no ``~/.netrc``), and with
    ``pool_size``, a connection pool of that many connections."""
    session = requests.Session()
    if pool_size is not None:
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False
    return session


class WhatsAppClient:
    """A client for the gateway's send and status endpoints.

    Without ``session``, the client makes its own (``pool_size``: its connection pool's size,
    requests' default of 10 when ``None``) and sends straight through its adapter; with one, every
    request goes through ``session.post``."""

    def __init__(
        self,
        *,
        api_key: str,
        send_url: str,
        status_url: str,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_retries: int = 3,
        backoff: Backoff | None = None,
        gate: SharedBackoff | None = None,
        session: requests.Session | None = None,
        pool_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._auth = _KeyAuth(api_key)
        self.send_url = send_url
        self.status_url = status_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.gate = gate
        self._direct = session is None
        self.session = _own_session(send_url, pool_size) if session is None else session
        self._routes: dict[str, _Route] = {}
        for prefix, factory in TRANSPORTS.items():
            if send_url.lower().startswith(prefix):
                self.session.mount(prefix, factory())
        self.sleep = sleep
        self.rand = rand
        self.now = now
        # Every frame below _post_once (requests, urllib3, http.client) holds the Authorization
        # header: Django's error reports (DEBUG off) show none of their variables. Imported
        # here because django.views loads the ORM, which this module does not.
        from django.views.decorators.debug import sensitive_variables

        self._post_once = sensitive_variables()(self._post_once)  # type: ignore[method-assign]

    @classmethod
    def from_settings(cls, conf: WhatsAppSettings | None = None, **kwargs: Any) -> WhatsAppClient:
        conf = conf or get_settings()
        kwargs.setdefault("max_retries", conf.MAX_RETRIES)
        return cls(
            api_key=conf.require_api_key(),
            send_url=conf.send_url,
            status_url=conf.status_url,
            timeout=conf.TIMEOUT,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"WhatsAppClient(send_url={self.send_url!r}, api_key='***')"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> WhatsAppClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------------

    def send(self, payload: Mapping[str, Any]) -> SendResult:
        """Submit one message. Raises a :class:`WhatsAppError` subclass when it was not taken."""
        body, attempts = self._call(self.send_url, payload, idempotent=False)
        message_id = _as_id(body.get("message_id"))
        if message_id is None:
            given = body.get("message_id")
            error = UnexpectedResponse(
                "The gateway's answer has no message_id."
                if _as_int(given) is None and not _long_digits(given)
                else (
                    f"The gateway's message_id {_shown(given)} is not a whole number from 1 to "
                    f"{MAX_PROVIDER_ID}."
                ),
                http_status=200,
                body=body,
            )
            error.attempts = attempts
            raise error
        return SendResult(message_id=message_id, attempts=attempts, body=body)

    def get_status(self, message_id: int) -> StatusResult:
        """Ask the status endpoint for the current status of a message."""
        body, attempts = self._call(self.status_url, {"message_id": message_id}, idempotent=True)
        status = _as_int(body.get("status"))
        if status is None or status not in PROVIDER_STATUS_CODES:
            error = UnexpectedResponse(
                f"The gateway's status answer has no known status: {body.get('status')!r}.",
                http_status=200,
                body=body,
            )
            error.maybe_delivered = False
            error.attempts = attempts
            raise error
        reported = _as_id(body.get("message_id"))
        return StatusResult(
            message_id=reported if reported is not None else message_id,
            status=status,
            body=body,
            attempts=attempts,
        )

    # -- transport -------------------------------------------------------------------------

    def _call(
        self, url: str, payload: Mapping[str, Any], *, idempotent: bool
    ) -> tuple[dict[str, Any], int]:
        attempt = 0
        gate = self.gate
        while True:
            attempt += 1
            try:
                ticket = gate.wait(self.sleep) if gate is not None else 0
            except NotRequested as held_back:
                held_back.attempts = attempt - 1
                raise
            except Exception as exc:  # the shared budget could not be read: nothing goes out
                raise _gate_failed(exc, attempt - 1) from exc
            try:
                try:
                    return self._post_once(url, payload), attempt
                except WhatsAppError as error:
                    error.attempts = attempt
                    retry = error.retryable or (idempotent and isinstance(error, TransportError))
                    shared = gate is not None and isinstance(error, RateLimited)
                    limit = self.max_retries
                    if shared and gate is not None:
                        limit = max(limit, gate.rate_limit_retries())
                    if not retry or attempt > limit:
                        if gate is not None and gate.stop_on_outage and _outage(error):
                            gate.stop_requests()
                        raise
                    delay = self.backoff.delay(attempt, error.retry_after, self.rand())
                    if shared and gate is not None:
                        # Every sender waits at the gate before its next request; one sleeps
                        # for all. Declared before this request's slot is given back.
                        try:
                            declared = gate.pause(delay, ticket)
                        except Exception as exc:  # the shared pause could not be stored
                            raise _gate_failed(exc, attempt) from exc
                        logger.warning(
                            "WhatsApp gateway rate limit (attempt %d); %s",
                            attempt,
                            f"every sender pauses {delay:.2f}s" if declared else "already pausing",
                        )
                        continue
                    logger.warning(
                        "WhatsApp gateway attempt %d failed (%s); retrying in %.2fs",
                        attempt,
                        type(error).__name__,
                        delay,
                    )
            finally:
                if gate is not None:
                    gate.release()
            self.sleep(delay)

    def _post_once(self, url: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            if self._direct:
                route = self._routes.get(url)
                if route is None:
                    route = self._routes[url] = _Route(self.session, url, headers, self._auth)
                response = route.post(data, self.timeout)
            else:
                response = self.session.post(
                    url,
                    data=data,
                    headers=headers,
                    auth=self._auth,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
        except requests.exceptions.ConnectionError as exc:
            connect_failed = _connect_failed(exc)
            raise TransportError(
                "Could not connect to the gateway."
                if connect_failed
                else "The request was sent but the gateway's answer never came.",
                maybe_delivered=not connect_failed,
            ) from exc
        except requests.exceptions.Timeout as exc:  # ReadTimeout: the request went out
            raise TransportError(
                "The gateway did not answer in time.", maybe_delivered=True
            ) from exc
        except _NOT_SENT_ERRORS as exc:
            raise TransportError(
                f"The request could not be made: {type(exc).__name__}.", maybe_delivered=False
            ) from exc
        except requests.exceptions.RequestException as exc:  # e.g. a broken chunked answer
            raise TransportError(
                f"The gateway's answer could not be read: {type(exc).__name__}.",
                maybe_delivered=True,
            ) from exc
        logger.debug("POST %s -> HTTP %s", url, response.status_code)
        body = _decode(response)
        error = error_from_answer(
            response.status_code,
            response.text[:500] if body is _NOT_JSON else body,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=self.now),
        )
        if error is not None:
            raise error
        if not isinstance(body, dict):
            raise UnexpectedResponse(
                "The gateway answered with an empty body."
                if body is None
                else "The gateway answered with a body that is not a JSON object.",
                http_status=response.status_code,
                body=response.text[:500] if body is _NOT_JSON else body,
            )
        return body
