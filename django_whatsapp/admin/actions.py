"""What the operator can do to messages from the admin: send drafts, refresh statuses, retry.

Each goes through :mod:`django_whatsapp.services`; the admin checks the ``send_message``
permission before any of them runs, and each reports what it did with ``message_user``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import services
from ..exceptions import CampaignNotRunning, WhatsAppError
from ..models import Message
from .display import explain_error, retry_helps

Status = Message.Status
#: The names of the actions that send, refresh or retry (they need ``send_message``).
SEND_ACTIONS = ("send_drafts", "refresh_statuses", "retry_not_sent")
NOT_GONE = (Status.NOT_SENT, Status.UNKNOWN)


def report_send(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, message: Message) -> None:
    """Tell the operator what became of a message just sent."""
    if message.status == Status.NOT_SENT:
        why = explain_error(message)
        reason = why.title if why else message.error_message
        modeladmin.message_user(
            request, _("The message was not sent: %(reason)s.") % {"reason": reason}, messages.ERROR
        )
    elif message.status in (Status.DRAFT, Status.QUEUED, Status.SENDING):
        modeladmin.message_user(
            request, _("The message is queued and will be sent shortly."), messages.INFO
        )
    elif message.status == Status.UNKNOWN:
        modeladmin.message_user(
            request,
            _("The gateway's answer was lost; the status will follow when a report arrives."),
            messages.WARNING,
        )
    else:
        modeladmin.message_user(
            request,
            _("The gateway accepted the message (id %(id)s).")
            % {"id": message.provider_message_id},
            messages.SUCCESS,
        )


def _not_configured(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, error: ImproperlyConfigured
) -> None:
    modeladmin.message_user(
        request,
        _("Nothing was sent: the gateway is not configured. %(error)s") % {"error": error},
        messages.ERROR,
    )


def send_one(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, message: Message) -> None:
    try:
        services.send_message(message)
    except ImproperlyConfigured as error:
        _not_configured(modeladmin, request, error)
    except CampaignNotRunning as error:
        modeladmin.message_user(request, str(error), messages.WARNING)
    except ValidationError as error:
        modeladmin.message_user(request, "; ".join(error.messages), messages.ERROR)
    else:
        report_send(modeladmin, request, message)


def refresh_one(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, message: Message) -> None:
    try:
        services.refresh_status(message)
    except ImproperlyConfigured as error:
        _not_configured(modeladmin, request, error)
    except ValueError as error:
        modeladmin.message_user(request, str(error), messages.WARNING)
    except WhatsAppError as error:
        modeladmin.message_user(
            request,
            _("The gateway did not tell the status: %(error)s") % {"error": error},
            messages.ERROR,
        )
    else:
        modeladmin.message_user(
            request,
            _("Status refreshed: %(status)s.") % {"status": message.get_status_display()},
            messages.SUCCESS,
        )


def retry_one(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, message: Message) -> None:
    if message.status == Status.NOT_SENT and not retry_helps(message):
        why = explain_error(message)
        modeladmin.message_user(
            request,
            _("Not retried: %(reason)s. %(advice)s")
            % {"reason": why.title if why else "", "advice": why.advice if why else ""},
            messages.WARNING,
        )
        return
    try:
        services.retry_message(message, user=request.user)
    except (services.NotRetryable, CampaignNotRunning) as error:
        modeladmin.message_user(request, str(error), messages.WARNING)
    except ImproperlyConfigured as error:
        _not_configured(modeladmin, request, error)
    except ValidationError as error:
        modeladmin.message_user(request, "; ".join(error.messages), messages.ERROR)
    else:
        report_send(modeladmin, request, message)


def counts_message(*sentences: str) -> str:
    """Sentences of counts, each already in its plural form (``ngettext``), as one message."""
    return " ".join(sentences)


def _level(failed: int) -> int:
    return messages.WARNING if failed else messages.SUCCESS


def _send_each(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Message],
    eligible: Callable[[Message], bool],
    send: Callable[[Message], object],
) -> tuple[int, int, int] | None:
    """Send every ``eligible`` message of the selection through ``send``; count
    (sent, failed, skipped). ``None`` when the app is not configured (the operator is told)."""
    sent = failed = skipped = 0
    outside: CampaignNotRunning | None = None
    for message in queryset.select_related("template"):
        if not eligible(message):
            skipped += 1
            continue
        try:
            send(message)
        except ImproperlyConfigured as error:
            _not_configured(modeladmin, request, error)
            return None
        except CampaignNotRunning as error:
            # Only its running campaign sends a campaign's message: left as it is.
            outside, skipped = error, skipped + 1
            continue
        except (services.NotRetryable, ValidationError):
            failed += 1
            continue
        if message.status in NOT_GONE:
            failed += 1
        else:
            sent += 1
    if outside is not None:
        modeladmin.message_user(request, str(outside), messages.WARNING)
    return sent, failed, skipped


@admin.action(description=gettext_lazy("Send selected drafts"), permissions=["send"])
def send_drafts(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Message]
) -> None:
    counts = _send_each(
        modeladmin,
        request,
        queryset,
        lambda message: message.status == Status.DRAFT,
        services.send_message,
    )
    if counts is None:
        return
    sent, failed, skipped = counts
    modeladmin.message_user(
        request,
        counts_message(
            ngettext("%(count)d draft sent.", "%(count)d drafts sent.", sent) % {"count": sent},
            ngettext("%(count)d message not sent.", "%(count)d messages not sent.", failed)
            % {"count": failed},
            ngettext(
                "%(count)d message skipped: not a draft.",
                "%(count)d messages skipped: not drafts.",
                skipped,
            )
            % {"count": skipped},
        ),
        _level(failed),
    )


@admin.action(description=gettext_lazy("Refresh status"), permissions=["send"])
def refresh_statuses(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Message]
) -> None:
    refreshed = failed = skipped = 0
    for message in queryset:
        if message.provider_message_id is None or message.is_final:
            skipped += 1
            continue
        try:
            services.refresh_status(message)
        except ImproperlyConfigured as error:
            _not_configured(modeladmin, request, error)
            return
        except WhatsAppError:
            failed += 1
        else:
            refreshed += 1
    modeladmin.message_user(
        request,
        counts_message(
            ngettext("%(count)d status refreshed.", "%(count)d statuses refreshed.", refreshed)
            % {"count": refreshed},
            ngettext("%(count)d refresh failed.", "%(count)d refreshes failed.", failed)
            % {"count": failed},
            ngettext(
                "%(count)d message skipped: final or never accepted.",
                "%(count)d messages skipped: final or never accepted.",
                skipped,
            )
            % {"count": skipped},
        ),
        _level(failed),
    )


@admin.action(description=gettext_lazy("Retry not sent"), permissions=["send"])
def retry_not_sent(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Message]
) -> None:
    counts = _send_each(
        modeladmin,
        request,
        queryset,
        retry_helps,
        lambda message: services.retry_message(message, user=request.user),
    )
    if counts is None:
        return
    sent, failed, skipped = counts
    modeladmin.message_user(
        request,
        counts_message(
            ngettext("%(count)d message sent again.", "%(count)d messages sent again.", sent)
            % {"count": sent},
            ngettext(
                "%(count)d message not sent again.", "%(count)d messages not sent again.", failed
            )
            % {"count": failed},
            ngettext(
                "%(count)d message skipped: not “not sent”, or a retry cannot help.",
                "%(count)d messages skipped: not “not sent”, or a retry cannot help.",
                skipped,
            )
            % {"count": skipped},
        ),
        _level(failed),
    )
