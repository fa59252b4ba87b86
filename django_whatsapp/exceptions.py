"""The error tree. Every gateway error is a :class:`WhatsAppError` carrying the gateway's answer.

Configuration mistakes are :class:`django.core.exceptions.ImproperlyConfigured`, outside this tree.
"""

from __future__ import annotations

import re
from typing import Any

#: How many characters of a gateway's error name or message any pattern reads. The gateway's
#: names are a few words; an answer of any size costs the same (see :func:`bounded`).
MAX_MATCHED_TEXT = 1000

SERVICE_WINDOW_PATTERN = re.compile(r"24\s*hours|only send a template", re.IGNORECASE)
#: The start of "Invalid Parameter: [param_name]" (not "Invalid Parameters"); what follows is
#: read without a pattern (:func:`invalid_parameter_name`). Each quantifier here is followed
#: by a character it cannot match, so matching is linear in the input.
INVALID_PARAMETER_PATTERN = re.compile(r"^\s*Invalid\s+Parameter\b", re.IGNORECASE)


def bounded(text: str | None) -> str:
    """The part of an outside text the patterns read: its first ``MAX_MATCHED_TEXT``
    characters."""
    return (text or "")[:MAX_MATCHED_TEXT]


def is_invalid_parameter_name(name: str | None) -> bool:
    """Whether a gateway error name reads "Invalid Parameter..." (any case, any spacing)."""
    return INVALID_PARAMETER_PATTERN.match(bounded(name)) is not None


def invalid_parameter_name(name: str | None) -> str | None:
    """The parameter named by "Invalid Parameter: [param_name]" (brackets and colon optional),
    or ``None`` when the name is not of that form or names no parameter."""
    text = bounded(name)
    match = INVALID_PARAMETER_PATTERN.match(text)
    if match is None:
        return None
    rest = text[match.end() :].strip()
    rest = rest[1:] if rest.startswith(":") else rest
    return rest.strip().strip("[]").strip() or None


def mentions_service_window(text: str | None) -> bool:
    """Whether a gateway's error text says the customer's 24-hour window is closed."""
    return SERVICE_WINDOW_PATTERN.search(bounded(text)) is not None


class WhatsAppError(Exception):
    """Base of every error the gateway (or the road to it) can produce.

    ``code``, ``status``, ``name`` and ``message`` are the fields of the gateway's error body
    when it sent one; ``http_status`` is the HTTP status code of the answer, if any;
    ``retry_after`` the seconds its ``Retry-After`` header asked to wait, if any.
    """

    #: whether sending again may succeed (the gateway certainly did not take the message)
    retryable = False
    #: whether the gateway may have taken the message although we got no success answer
    maybe_delivered = False
    default_name = "WhatsApp gateway error"
    default_message = "The gateway refused the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        name: str | None = None,
        code: int | None = None,
        status: int | None = None,
        http_status: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.name = name or self.default_name
        self.code = code
        self.status = status
        self.http_status = http_status
        self.body = body
        self.retry_after = retry_after
        #: how many HTTP requests were made before this error was raised
        self.attempts = 0
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling: rebuild from the state.
        return (_restore, (type(self), self.__dict__.copy()))

    def __str__(self) -> str:
        details = []
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.status is not None:
            details.append(f"status {self.status}")
        if self.http_status is not None and self.http_status != self.status:
            details.append(f"HTTP {self.http_status}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{self.name}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, message={self.message!r}, "
            f"code={self.code!r}, status={self.status!r}, http_status={self.http_status!r})"
        )


class RateLimited(WhatsAppError):
    """429, code 0: too many requests; retried after ``retry_after`` seconds when given."""

    retryable = True
    default_name = "Too Many Requests"
    default_message = "Rate limit exceeded"


class InvalidParameter(WhatsAppError):
    """400, code 1: a parameter is empty or invalid; ``param`` names it."""

    default_name = "Invalid Parameter"
    default_message = "Empty parameter or parameter validation error"

    @property
    def param(self) -> str | None:
        return invalid_parameter_name(self.name)


class InsufficientBalance(WhatsAppError):
    """402, code 3: the account balance is empty; top it up."""

    default_name = "Topup balance is required"
    default_message = "User balance is empty"


class ServiceWindowClosed(WhatsAppError):
    """More than 24 hours since the customer last wrote: only a template message can be sent."""

    default_name = "Service Unavailable"
    default_message = (
        "More than 24 hours have passed since the customer last replied: "
        "only a template message can be sent."
    )


class OptedOut(WhatsAppError):
    """The recipient opted out (``Contact.opted_out_at`` is set): refused here, before any
    request, and the message stored ``not_sent`` with this error. Never retried: the customer
    must opt in again first (see :mod:`django_whatsapp.optout`)."""

    default_name = "Opted out"
    default_message = "The recipient opted out of messages: nothing is sent to them."


class MessageExpired(WhatsAppError):
    """The message was not requested by its ``expires_at``: it ends ``not_sent`` with this
    error, refused here before any request, and is never sent late (a one-time code or a flash
    sale is worthless an hour late). The message's own fault: never retried by the app."""

    default_name = "Expired"
    default_message = "The message was not requested before it expired: it is not sent late."


class DailyLimitReached(WhatsAppError):
    """The account's ``DAILY_LIMIT`` (its messaging tier: unique recipients per moving 24
    hours) is reached: no request was made. ``retry_at`` is when a place frees. Queued and
    campaign sends wait until then (``queued``); a single inline send ends ``not_sent`` with
    this error. A recipient whose own 24-hour conversation is open, or who was counted in the
    last 24 hours already, is never refused for it."""

    default_name = "Daily limit reached"
    default_message = (
        "The account's daily limit of new recipients (its messaging tier) is reached: nothing "
        "was sent."
    )

    def __init__(self, *args: Any, retry_at: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: When the moving 24 hours frees a place (an aware datetime), if known.
        self.retry_at = retry_at


class GatewayServerError(WhatsAppError):
    """500, codes 2, 4, 5, 6 (or any 5xx answer): the gateway failed; retried (after
    ``retry_after`` seconds when the answer said so)."""

    retryable = True
    default_name = "Internal server error"
    default_message = "The gateway reported an internal error."


class AuthenticationFailed(WhatsAppError):
    """401/403: the API key is missing, wrong or not allowed."""

    default_name = "Authentication failed"
    default_message = "The gateway refused the access key."


class UnexpectedResponse(WhatsAppError):
    """A successful HTTP status whose body is not the documented answer (HTML, empty, not JSON).

    The gateway answered 2xx, so it may have taken the message: ``maybe_delivered`` is true.
    """

    maybe_delivered = True
    default_name = "Unexpected response"
    default_message = "The gateway answered with a body that is not the documented JSON."


class TransportError(WhatsAppError):
    """No answer from the gateway.

    ``maybe_delivered`` is false when the request certainly did not reach the gateway (the
    connection could not be made): such sends are retried. It is true when the request went out
    and no answer came (read timeout, dropped connection): the gateway may have taken the
    message, so it is never sent again automatically.
    """

    default_name = "Transport error"
    default_message = "No answer from the gateway."

    def __init__(self, *args: Any, maybe_delivered: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.maybe_delivered = maybe_delivered
        self.retryable = not maybe_delivered


class RateLimitUnavailable(WhatsAppError):
    """The cache that holds the shared rate limit (``RATE_LIMIT_CACHE``) could not be reached:
    no request was made (the limit fails closed). A fault of the system, not of the message:
    queued and campaign sends wait and go on when the cache answers again; a single inline send
    ends ``not_sent`` with this error."""

    retryable = True
    default_name = "Rate limit unavailable"
    default_message = (
        "The cache that holds the shared rate limit could not be reached: nothing was sent."
    )


class NotRequested(WhatsAppError):
    """A request the gate held back (no request was made): another request through the same
    gate had just found the gateway failing (it could not be reached, or answered server
    errors), so the others wait for the next try instead of failing too. A fault of the system:
    the message is ``queued`` again."""

    retryable = True
    default_name = "Not requested"
    default_message = (
        "Not requested: another request had just found the gateway failing; the message waits "
        "for the next try."
    )


class CampaignNotRunning(ValueError):
    """A campaign's message was asked to be sent outside its campaign's engine while the
    campaign is not ``running`` (``send_message``, the admin's actions, a retry): nothing is
    sent and the message is left as it is. ``campaign`` is the campaign."""

    def __init__(self, campaign: Any) -> None:
        from django.utils.translation import gettext as _

        self.campaign = campaign
        super().__init__(
            _(
                "This message belongs to the campaign “%(name)s”, which is "
                "%(status)s: only the running campaign sends its messages."
            )
            % {"name": campaign.name, "status": campaign.get_status_display().lower()}
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.campaign,))


def _restore(cls: type[WhatsAppError], state: dict[str, Any]) -> WhatsAppError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = (error.message,)
    return error


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit():
            return int(text)
    return None


def error_from_answer(
    http_status: int, body: Any, *, retry_after: float | None = None
) -> WhatsAppError | None:
    """Map a gateway answer to its exception, or ``None`` when the answer is not an error.

    A JSON body with ``name``/``message``/``code``/``status`` is an error whatever the HTTP status.
    Otherwise the HTTP status decides.
    """
    fields: dict[str, Any] = {}
    is_error_body = (
        isinstance(body, dict)
        and ("name" in body or ("code" in body and "message" in body))
        and "message_id" not in body
    )
    if is_error_body:
        fields = {
            "name": str(body.get("name") or "") or None,
            "message": str(body.get("message") or "") or None,
            "code": _as_int(body.get("code")),
            "status": _as_int(body.get("status")),
        }
    elif 200 <= http_status < 300:
        return None
    kwargs: dict[str, Any] = {**fields, "http_status": http_status, "body": body}
    name = fields.get("name") or ""
    text = f"{bounded(name)} {bounded(fields.get('message'))}"
    code = fields.get("code")
    status = fields.get("status")

    if mentions_service_window(text):
        return ServiceWindowClosed(**kwargs)
    if http_status in (401, 403) or status in (401, 403):
        # Before the rate limit: Yii-style gateways answer HTTP errors with "code": 0 too.
        return AuthenticationFailed(**kwargs)
    rate_limit_code = code == 0 and status in (None, 429) and (200 <= http_status < 300)
    if http_status == 429 or status == 429 or rate_limit_code:
        return RateLimited(retry_after=retry_after, **kwargs)
    if code == 1 or is_invalid_parameter_name(name):
        return InvalidParameter(**kwargs)
    if code == 3 or status == 402 or http_status == 402:
        return InsufficientBalance(**kwargs)
    if code in (2, 4, 5, 6) or http_status >= 500 or (status is not None and status >= 500):
        return GatewayServerError(retry_after=retry_after, **kwargs)
    if http_status == 400:
        return InvalidParameter(**kwargs)
    return WhatsAppError(**kwargs)


class IdempotencyConflict(ValueError):
    """A send reused an ``idempotency_key`` with different content than the message first sent
    with it. Outside the gateway's tree (:class:`WhatsAppError`): nothing was asked of the
    gateway. ``message`` is the first message, ``fields`` the names of the fields that differ.
    """

    def __init__(self, key: str, message: Any, fields: list[str]) -> None:
        self.key = key
        self.message = message
        self.fields = fields
        super().__init__(
            f"The idempotency key {key!r} was first used for message {message.pk} with other "
            f"content: {', '.join(fields)} differ. Use a new key for a different message."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.message, self.fields))
