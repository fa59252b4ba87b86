"""How the operator's console shows messages: status badges, previews, errors in plain words,
and what the screens share (the compose preview's words, CSV cells); the counts and funnel are
in :mod:`.summary`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils import formats, timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..campaigns.control import CANCELLED_ERROR_NAME
from ..exceptions import (
    DailyLimitReached,
    MessageExpired,
    OptedOut,
    RateLimitUnavailable,
    bounded,
    invalid_parameter_name,
    is_invalid_parameter_name,
    mentions_service_window,
)
from ..models import PLACEHOLDER_RE, Contact, Message
from ..sending import OUTSIDE_HOURS
from . import accounts as admin_accounts
from .dates import time_of_day_format, when

Status = Message.Status
Kind = Message.MessageType

#: The colour family of each status badge (see static/django_whatsapp/admin.css).
TONES: dict[str, str] = {
    Status.DRAFT: "quiet",
    Status.QUEUED: "quiet",
    Status.SENDING: "progress",
    Status.UNKNOWN: "warn",
    Status.ACCEPTED: "progress",
    Status.PENDING: "progress",
    Status.SENT: "progress",
    Status.DELIVERED: "good",
    Status.SEEN: "good",
    Status.NOT_SENT: "bad",
    Status.REJECTED: "bad",
    Status.ERROR: "bad",
    Status.FAILED: "bad",
    Status.DELETED: "bad",
}

#: How the console names a message's direction (the model's "Sent" would read as a status).
DIRECTION_LABELS: dict[str, Any] = {
    Message.Direction.OUTBOUND: gettext_lazy("Outgoing"),
    Message.Direction.INBOUND: gettext_lazy("Incoming"),
}

#: The console's stylesheet, shared by every screen's Media.
CSS = {"all": ("django_whatsapp/admin.css",)}


def status_badge(status: str) -> SafeString:
    label = Status(status).label if status in Status.values else status
    return format_html(
        '<span class="wa-badge wa-tone-{}" data-status="{}">{}</span>',
        TONES.get(status, "quiet"),
        status,
        label,
    )


def highlight_placeholders(body: str | None) -> SafeString:
    """A template body with its ``{{n}}`` placeholders marked."""
    text = body or ""
    html: list[str] = []
    last = 0
    for match in PLACEHOLDER_RE.finditer(text):
        html.append(conditional_escape(text[last : match.start()]))
        html.append(format_html('<mark class="wa-placeholder">{}</mark>', match.group(0)))
        last = match.end()
    html.append(conditional_escape(text[last:]))
    return mark_safe("".join(html))  # noqa: S308 - every piece is escaped above


def recipient(message: Message) -> str:
    digits = message.destination_addr or ""
    return f"+{digits}" if digits.isdigit() else digits


def short_preview(message: Message, length: int = 60) -> str:
    """One line saying what the message says."""
    if message.message_type == Kind.MEDIA:
        name = (message.file_url or "").rstrip("/").rsplit("/", 1)[-1]
        caption = f" - {message.text}" if message.text else ""
        text = _("Image %(name)s%(caption)s") % {"name": name, "caption": caption}
    elif message.message_type == Kind.TEMPLATE and message.template is not None:
        template = message.template
        text = f"{template.name}: {template.render(message.template_body_params)}"
    else:
        text = message.text
    return Truncator(" ".join(text.split())).chars(length)


def bubble(message: Message) -> SafeString:
    """The message as the recipient sees it (the same bubble as the compose page's preview)."""
    template = message.template if message.message_type == Kind.TEMPLATE else None
    context = {
        "image": message.file_url if message.message_type == Kind.MEDIA else "",
        "template": template,
        "header": message.template_header if template is not None else None,
        "header_is_image": template is not None and template.header_type == "image",
        "text": (
            template.render(message.template_body_params) if template is not None else message.text
        ),
        "time": message.submitted_at or message.created_at,
    }
    return render_to_string("django_whatsapp/admin/message/bubble.html", context)


# -- errors in plain words ---------------------------------------------------------------------


class Remedy:
    """What the operator can do about a failed message (the buttons its page offers)."""

    #: Send it again as it is: the failure came from the road or the account, not the message.
    RETRY = "retry"
    #: Send a template instead: the customer's 24-hour window is closed.
    TEMPLATE = "template"
    #: Compose a copy, correct it and send the copy: the gateway refused the message's content.
    COPY = "copy"
    #: Nothing to do but wait: the gateway may have the message.
    WAIT = "wait"
    #: The customer opted out: only they (START) or an operator on their page can undo it.
    OPT_IN = "opt_in"
    #: Nothing the operator can do about this message (its campaign was cancelled).
    NONE = "none"


@dataclass(frozen=True)
class Explanation:
    title: str
    advice: str
    #: What can help (:class:`Remedy`).
    remedy: str = Remedy.RETRY

    @property
    def retry_helps(self) -> bool:
        """Whether sending the same message again can succeed."""
        return self.remedy == Remedy.RETRY


#: The gateway's parameter names in plain words, for "the gateway refused ...".
PARAMETER_WORDS: dict[str, Any] = {
    "destination_addr": gettext_lazy("the recipient's phone number"),
    "source_addr": gettext_lazy("the sender name"),
    "text": gettext_lazy("the text"),
    "file_url": gettext_lazy("the image URL"),
    "message_type": gettext_lazy("the message type"),
    "template_name": gettext_lazy("the template name"),
    "template": gettext_lazy("the template"),
    "namespace": gettext_lazy("the template's namespace"),
    "language": gettext_lazy("the template's language"),
    "language_code": gettext_lazy("the template's language"),
    "params": gettext_lazy("the template's parameters"),
    "parameters": gettext_lazy("the template's parameters"),
    "body": gettext_lazy("the template's parameters"),
    "components": gettext_lazy("the template's parameters"),
    "header": gettext_lazy("the template's header"),
    "callback_url": gettext_lazy("the callback URL"),
}


def parameter_in_words(raw: str) -> str:
    """``destination_addr`` as "the recipient's phone number"; an unknown name as it is."""
    name = raw.strip("[] ").lower()
    words = PARAMETER_WORDS.get(name)
    if words is not None:
        return str(words)
    return raw.strip("[] ") or _("a parameter")


def explain_error(message: Message, *, look_up: bool = True) -> Explanation | None:
    """What went wrong with a message, for the operator, or ``None`` when nothing did.

    The explanation's ``remedy`` says what can help: a closed 24-hour window takes a template
    (:attr:`Remedy.TEMPLATE`); a value the gateway refused needs a corrected copy
    (:attr:`Remedy.COPY`); a rate limit, a server error, an empty balance or a refused access key
    (once fixed) and a connection that failed are worth a retry (:attr:`Remedy.RETRY`); a lost
    answer waits for the report (:attr:`Remedy.WAIT`). ``look_up=False`` (a list's row) reads
    nothing more from the database: the title is right, the advice general.
    """
    name, detail = message.error_name or "", message.error_message or ""
    text = f"{bounded(name)} {bounded(detail)}"
    code = message.error_code
    own = _refused_here(message, name, look_up)
    if own is not None:
        return own
    if mentions_service_window(text):
        return Explanation(
            _("The customer's 24-hour window is closed"),
            _(
                "The customer has not written to this number in the last 24 hours, so WhatsApp "
                "only accepts a template message now. Sending it again cannot help: send a "
                "template instead."
            ),
            Remedy.TEMPLATE,
        )
    invalid = is_invalid_parameter_name(name)
    if invalid or code == 1:
        param = parameter_in_words((invalid_parameter_name(name) or "") if invalid else "")
        return Explanation(
            _("The gateway refused %(param)s") % {"param": param},
            _(
                "%(param)s is empty or not in the form the gateway expects, so sending it again "
                "cannot help. Compose a copy, correct it and send the copy."
            )
            % {"param": capfirst(param)},
            Remedy.COPY,
        )
    lowered = text.lower()
    if code == 3 or "balance" in lowered:
        advice = _("Top up the DecisionTelecom account, then retry the message.")
        held = admin_accounts.state_notice(message.account) if look_up else None
        return Explanation(
            _("The account balance is empty"), f"{held} {advice}" if held else advice
        )
    if code == 0 or "too many" in lowered or "rate limit" in lowered:
        return Explanation(
            _("Too many requests"),
            _("The gateway is limiting how fast messages are sent. Retry in a minute."),
        )
    if name in ("Authentication failed", "Unauthorized") or "access key" in lowered:
        return Explanation(
            _("The gateway refused the access key"),
            _("Check API_KEY in the DJANGO_WHATSAPP setting."),
        )
    if code in (2, 4, 5, 6) or "internal" in lowered:
        return Explanation(
            _("The gateway had an internal error"),
            _("The message did not go out. Retry it later."),
        )
    if message.status == Status.UNKNOWN:
        return Explanation(
            _("No answer from the gateway"),
            _(
                "The gateway may or may not have taken the message. Its status will be updated "
                "when a report arrives; it is not sent again automatically."
            ),
            Remedy.WAIT,
        )
    if name == "Not submitted":
        return Explanation(
            _("The message was stopped before it went out"),
            _(
                "A check in this project refused it before it reached the gateway (%(reason)s). "
                "Retry it once the cause is fixed."
            )
            % {"reason": detail},
        )
    if name in ("Transport error", "Send interrupted"):
        return Explanation(
            _("No answer from the gateway"),
            _("The gateway could not be reached, so the message did not go out. Retry it."),
        )
    by_status: dict[str, str] = {
        Status.REJECTED: _(
            "WhatsApp rejected the message, for example because the number has no WhatsApp account."
        ),
        Status.FAILED: _("WhatsApp could not deliver the message."),
        Status.ERROR: _("The provider reported an error while delivering the message."),
        Status.DELETED: _("The provider reports the message as deleted."),
    }
    if message.status in by_status and not (name or detail):
        return Explanation(
            str(Status(message.status).label), by_status[message.status], Remedy.COPY
        )
    if (name or detail) and message.attempts == 0:
        return Explanation(
            _("The message was stopped before it went out"),
            _("The gateway was never asked. Retry it once the cause below is fixed."),
        )
    if name or detail:
        return Explanation(_("The gateway refused the message"), detail or name, Remedy.COPY)
    return None


def _refused_here(message: Message, name: str, look_up: bool = True) -> Explanation | None:
    """A refusal of this app's own, before any request: said in the reader's language (the
    stored error is English, for logs), with what can help."""
    if name == OptedOut.default_name and not look_up:
        return Explanation(
            _("The customer opted out"), _("Nothing is sent to them."), Remedy.OPT_IN
        )
    if name == OptedOut.default_name:
        contact = (
            Contact.objects.filter(number=message.destination_addr)
            .only("opted_out_at", "opt_out_reason")
            .first()
        )
        if contact is None or contact.opted_out_at is None:
            return Explanation(
                _("The customer had opted out"),
                _(
                    "Nothing was sent: the customer had opted out when this message was to go. "
                    "They have opted in again since: it can be sent again."
                ),
            )
        advice = _(
            "%(number)s opted out on %(time)s (%(reason)s), so nothing is sent to them: the "
            "gateway was never asked, and sending again or a copy would be refused the same way. "
            "Only the customer (by writing START) or an operator, on their contact page, can "
            "opt them in again."
        ) % {
            "number": recipient(message),
            "time": when(contact.opted_out_at),
            "reason": contact.opt_out_reason or _("no reason kept"),
        }
        return Explanation(_("The customer opted out"), advice, Remedy.OPT_IN)
    if name == CANCELLED_ERROR_NAME:
        return Explanation(
            _("The campaign was cancelled before this message was sent"),
            _(
                "Nothing was sent to this recipient. To send the campaign's message again, "
                "duplicate the campaign from its page."
            ),
            Remedy.NONE,
        )
    if name == RateLimitUnavailable.default_name:
        return Explanation(
            _("The rate limit could not be checked"),
            _(
                "The cache that holds the shared rate limit (RATE_LIMIT_CACHE) could not be "
                "reached, so nothing was sent. Retry the message once it answers."
            ),
        )
    if name == MessageExpired.default_name:
        return Explanation(
            _("The message expired before it could be sent"),
            _(
                "Nothing was sent: its time to go out had passed (it waited behind a paused "
                "account, a campaign or the daily limit), and a late message is worth nothing. "
                "Send a new one if it is still wanted."
            ),
            Remedy.NONE,
        )
    if name == DailyLimitReached.default_name:
        return Explanation(
            _("The account's daily limit was reached"),
            _(
                "Nothing was sent: the account already started conversations with as many "
                "customers as its messaging tier allows in 24 hours (DAILY_LIMIT). Retry it "
                "later, or queue it: queued messages wait for a place by themselves."
            ),
        )
    if name == OUTSIDE_HOURS:
        return Explanation(
            _("Waiting for the recipient's sending hours"),
            _(
                "It is night where the customer lives: the campaign sends this message when "
                "its sending hours open in the customer's own time zone."
            ),
            Remedy.WAIT,
        )
    return None


def retry_helps(message: Message) -> bool:
    """Whether the operator is offered a retry: the message was not sent, and for a reason a
    second attempt can overcome (see :func:`explain_error`)."""
    if message.status != Status.NOT_SENT:
        return False
    why = explain_error(message)
    return why is None or why.retry_helps


# -- shared by the screens ---------------------------------------------------------------------


def compose_i18n() -> dict[str, str]:
    """The words compose.js shows in the preview, and the time of day its bubble shows (the
    site's, in the console's one way)."""
    now = timezone.localtime()
    return {
        "empty": str(_("Type a message to see how it will look.")),
        "choose_template": str(_("Choose a template to see it here.")),
        "template": str(_("Template %(name)s (%(language)s)")),
        "now": formats.time_format(now, time_of_day_format(False)),
    }


class Echo:
    """A file-like object whose ``write`` returns what it was given: csv.writer's rows as
    strings, for a streamed response."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (a leading ``=``, ``@``, tab or
    carriage return is quoted with ``'``; numbers such as ``+380...`` stay as they are)."""
    first = value[:1]
    if first in ("=", "@", "\t", "\r") or (first in ("+", "-") and not _numeric(value)):
        return f"'{value}"
    return value


def _numeric(value: str) -> bool:
    return value[1:].replace(".", "", 1).isdigit()
