"""What the operator can do to messages from the admin: send drafts, refresh statuses, retry.

Each goes through :mod:`django_whatsapp.services`; the admin checks the ``send_message``
permission before any of them runs, and each reports what it did with ``message_user``. The list
actions that send (drafts, retries) cannot be undone: like Django's delete, they first show a
page saying how many messages will go and how many are skipped, and act on its "Yes".
A message of a campaign that is not running is never sent from here: the refusal says why
(the campaign's status, and what paused it) and what helps (resuming the campaign).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
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


def campaign_refusal(error: CampaignNotRunning) -> str:
    """Why a campaign's message was not sent from the admin, and what helps."""
    campaign = error.campaign
    advice = (
        _("Resume the campaign to send it.")
        if campaign.status == campaign.Status.PAUSED
        else _("Only its campaign sends it, while it runs.")
    )
    reason = getattr(campaign, "pause_reason", "")
    why = _(" It was paused: %(reason)s.") % {"reason": reason} if reason else ""
    return _("Not sent: %(error)s%(why)s %(advice)s") % {
        "error": error,
        "why": why,
        "advice": advice,
    }


def send_one(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, message: Message) -> None:
    try:
        services.send_message(message)
    except CampaignNotRunning as error:
        modeladmin.message_user(request, campaign_refusal(error), messages.ERROR)
    except ImproperlyConfigured as error:
        _not_configured(modeladmin, request, error)
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
    except CampaignNotRunning as error:
        modeladmin.message_user(request, campaign_refusal(error), messages.ERROR)
    except services.NotRetryable as error:
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
        modeladmin.message_user(request, campaign_refusal(outside), messages.WARNING)
    return sent, failed, skipped


def confirmation(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Message],
    *,
    action: str,
    title: str,
    going: int,
    skipped: int,
    going_words: str,
    skipped_words: str,
) -> TemplateResponse | None:
    """The page asking "Yes, send them" before an action that sends, or ``None`` once it was
    answered (the POST carries ``post=yes``) or nothing would go."""
    if request.POST.get("post") == "yes" or not going:
        return None
    # Every message of the filtered list (Django's "select all"): asked again the same way.
    across = request.POST.get("select_across") == "1"
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "subtitle": None,
        "action": action,
        "going": going,
        "going_words": going_words,
        "skipped": skipped,
        "skipped_words": skipped_words,
        "select_across": across,
        "selected": [] if across else [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "django_whatsapp/admin/message/confirm_action.html", context)


@admin.action(description=gettext_lazy("Send selected drafts…"), permissions=["send"])
def send_drafts(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Message]
) -> TemplateResponse | None:
    drafts = queryset.filter(status=Status.DRAFT).count()
    asked = confirmation(
        modeladmin,
        request,
        queryset,
        action="send_drafts",
        title=_("Send the selected drafts?"),
        going=drafts,
        skipped=queryset.count() - drafts,
        going_words=ngettext(
            "%(count)d draft will be sent now; it cannot be called back.",
            "%(count)d drafts will be sent now; they cannot be called back.",
            drafts,
        )
        % {"count": drafts},
        skipped_words=_("%(count)d selected messages are not drafts and are skipped.")
        % {"count": queryset.count() - drafts},
    )
    if asked is not None:
        return asked
    counts = _send_each(
        modeladmin,
        request,
        queryset,
        lambda message: message.status == Status.DRAFT,
        services.send_message,
    )
    if counts is None:
        return None
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
    return None


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
    return None


@admin.action(description=gettext_lazy("Retry not sent…"), permissions=["send"])
def retry_not_sent(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Message]
) -> TemplateResponse | None:
    candidates = list(queryset.filter(status=Status.NOT_SENT)[:10_000])
    going = sum(1 for message in candidates if retry_helps(message))
    skipped = queryset.count() - going
    asked = confirmation(
        modeladmin,
        request,
        queryset,
        action="retry_not_sent",
        title=_("Send the selected messages again?"),
        going=going,
        skipped=skipped,
        going_words=ngettext(
            "%(count)d message that was not sent will be sent again now.",
            "%(count)d messages that were not sent will be sent again now.",
            going,
        )
        % {"count": going},
        skipped_words=_(
            "%(count)d selected messages are skipped: not “not sent”, or a retry cannot help."
        )
        % {"count": skipped},
    )
    if asked is not None:
        return asked
    counts = _send_each(
        modeladmin,
        request,
        queryset,
        retry_helps,
        lambda message: services.retry_message(message, user=request.user),
    )
    if counts is None:
        return None
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
    return None
