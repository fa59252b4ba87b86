"""The admin's campaign screens: the list, a campaign's page (live progress, counts, funnel,
chart, start / pause / resume / cancel, duplicate, send again to the failed, rejected and
repeated rows, CSV export) and "create from a CSV upload" with a preview.

Creating is two steps. The first POST stores the uploaded file (capped, see
:mod:`.campaign_form`) and shows a preview: the first rows as WhatsApp bubbles, the rejected and
the repeated rows with their line and reason, and the counts the campaign will have; nothing is
created. The second POST creates the campaign from the stored file, all or nothing, through
``services.campaign_from_csv``, then starts or schedules it when asked and deletes the file.

Every screen tells the same numbers: the list and the page count the campaign's messages by
status with one function (:func:`~django_whatsapp.campaigns.control.campaign_progress`), and the
page's script polls them until the statuses stop changing. Starting and cancelling, which cannot
be undone, ask first on a page that says what will happen to how many messages. Every change
goes through :mod:`django_whatsapp.services` and needs the ``django_whatsapp.send_message``
permission and the change permission on campaigns.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib import messages as flash
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import services
from ..campaigns.audience import REPEATED_REASON
from ..campaigns.control import (
    CampaignProgress,
    CampaignStateError,
    campaign_export,
    campaign_progress,
)
from ..campaigns.duplicate import failed_messages
from ..campaigns.estimate import CampaignEstimate
from ..campaigns.hours import of_campaign
from ..checks import task_framework_problem
from ..models import Campaign, Message
from . import accounts as admin_accounts
from . import charts, display
from .campaign_add import REJECTIONS_SHOWN, CampaignAddMixin
from .campaign_form import CampaignForm
from .campaign_state import (
    CampaignChangeList,
    account_state,
    available_actions,
    campaign_badge,
    campaign_notice,
    campaign_summary,
    created_message,
    progress_bar,
    progress_state,
    with_reasons,
)
from .dates import time_zone_name, when, when_column
from .display import CSS
from .guard import GuardedAdmin, guard_urls

__all__ = ["CampaignAdmin", "CampaignForm"]

CStatus = Campaign.Status
ACTIONS: dict[str, Callable[[Campaign], Campaign]] = {
    "start": services.start_campaign,
    "pause": services.pause_campaign,
    "resume": services.resume_campaign,
    "cancel": services.cancel_campaign,
}
#: The changes that cannot be undone: a page says what will happen before they are made.
CONFIRMED = ("start", "cancel")
#: The changes that hand messages to workers.
STARTS = ("start", "resume")


# -- the admin ---------------------------------------------------------------------------------


def page_estimate(campaign: Campaign) -> tuple[CampaignEstimate | None, str | None]:
    """The campaign page's estimate and, when its account can no longer be used (removed from
    ``DJANGO_WHATSAPP['ACCOUNTS']`` since it was created), why there is none: the page still
    opens, saying so."""
    if campaign.is_finished:
        return None, None
    try:
        return services.campaign_estimate(campaign), None
    except ImproperlyConfigured as error:
        return None, _("This campaign's account cannot be used: %(problem)s") % {"problem": error}


@admin.register(Campaign)
class CampaignAdmin(CampaignAddMixin, GuardedAdmin, admin.ModelAdmin):
    # No list actions, so no bulk delete: a campaign being sent is cancelled first, then
    # deleted from its page (without overriding get_actions, whose signature Django 6.1 changes).
    actions = None

    class Media:
        css = CSS

    list_display = (
        "name",
        "status_badge",
        "progress",
        "counts",
        "send_at_when",
        # Not the author (on the campaign's page): the list fits 1280 px in every language.
        "created_at_when",
    )
    list_filter = ("status",)
    search_fields = ("name",)
    date_hierarchy = "created_at"
    send_at_when = when_column(Campaign, "send_at")
    created_at_when = when_column(Campaign, "created_at")

    # -- permissions ---------------------------------------------------------------------------

    def can_run(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        """Start, pause, resume, cancel: sending permission and change permission."""
        return request.user.has_perm(
            f"{self.opts.app_label}.send_message"
        ) and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(
            f"{self.opts.app_label}.send_message"
        ) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # A campaign being sent is cancelled first; its messages stay (their campaign unset).
        if obj is not None and obj.status in (CStatus.RUNNING, CStatus.SCHEDULED, CStatus.PAUSED):
            return False
        return super().has_delete_permission(request, obj)

    # -- the list ------------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CampaignChangeList

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = tuple(super().get_list_filter(request))
        return (*filters, "account") if admin_accounts.several() else filters

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: Campaign) -> SafeString:
        notice = getattr(obj, "wa_notice", None)
        if not notice:
            return campaign_badge(obj.status)
        return format_html(
            '{}<div class="wa-campaign-notice">{}</div>', campaign_badge(obj.status), notice
        )

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, obj: Campaign) -> SafeString:
        """The campaign's messages past ``sending``, of all, as its page counts them."""
        progress = getattr(obj, "wa_progress", None) or CampaignProgress(total=0)
        return progress_bar(progress, small=True)

    @admin.display(description=gettext_lazy("counts"))
    def counts(self, obj: Campaign) -> str:
        return ngettext(
            "%(recipients)d recipient, %(rejected)d rejected, %(duplicates)d repeated",
            "%(recipients)d recipients, %(rejected)d rejected, %(duplicates)d repeated",
            obj.recipients_count,
        ) % {
            "recipients": obj.recipients_count,
            "rejected": obj.rejected_count,
            "duplicates": obj.duplicates_count,
        }

    # -- urls ----------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        own = [
            # The upload's cap is in place before the request's body is read (see _capped).
            path("add/", self._capped(wrap(self.add_view)), name="{}_{}_add".format(*info)),
            path(
                "<path:object_id>/progress/",
                wrap(self.progress_view),
                name="{}_{}_progress".format(*info),
            ),
            path(
                "<path:object_id>/export/",
                wrap(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "<path:object_id>/duplicate/",
                transaction.non_atomic_requests(wrap(self._copy_view(only_failed=False))),
                name="{}_{}_duplicate".format(*info),
            ),
            path(
                "<path:object_id>/send-again/",
                transaction.non_atomic_requests(wrap(self._copy_view(only_failed=True))),
                name="{}_{}_send_again".format(*info),
            ),
            *(
                path(
                    f"<path:object_id>/{action}/",
                    wrap(self._action_view(action)),
                    name="{}_{}_{}".format(*info, action),
                )
                for action in ACTIONS
            ),
        ]
        return [*guard_urls(own), *super().get_urls()]

    def _campaign(self, request: HttpRequest, object_id: str) -> Campaign:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("There is no such campaign."))
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    # -- a campaign's page ---------------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The campaign's page: read-only; its changes are the action buttons."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET"])
        campaign = self._campaign(request, object_id)
        progress = campaign_progress(campaign)
        summary = campaign_summary(campaign)
        notice = campaign_notice(campaign, account_state(campaign))
        messages_url = reverse("admin:django_whatsapp_message_changelist")
        first = (
            Message.objects.filter(campaign=campaign)
            .select_related("template")
            .order_by("pk")
            .first()
        )
        can_run = self.can_run(request, campaign)
        rows = campaign.rejections.order_by("line")
        can_copy = self.has_add_permission(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": campaign.name,
            "subtitle": None,
            "campaign": campaign,
            "original": campaign,
            "badge": campaign_badge(campaign.status),
            "state": progress_state(campaign, progress, summary, notice),
            "bar": progress_bar(progress),
            "notice": notice,
            "summary": summary,
            "chart": charts.render(
                charts.activity(Message.objects.filter(campaign=campaign)),
                title=_("Sends, deliveries and failures"),
            ),
            "content": display.bubble(first) if first is not None else "",
            "rejections": with_reasons(rows.exclude(reason=REPEATED_REASON)[:REJECTIONS_SHOWN]),
            "repeated": with_reasons(rows.filter(reason=REPEATED_REASON)[:REJECTIONS_SHOWN]),
            "actions": available_actions(campaign) if can_run else [],
            "confirmed": CONFIRMED,
            "workers_problem": task_framework_problem() if can_run else None,
            "can_delete": self.has_delete_permission(request, campaign),
            "can_copy": can_copy,
            "failed_count": failed_messages(campaign).count() if can_copy else 0,
            "several_accounts": admin_accounts.several(),
            "messages_url": f"{messages_url}?{urlencode({'campaign__id__exact': campaign.pk})}",
            "progress_url": reverse("admin:django_whatsapp_campaign_progress", args=[campaign.pk]),
            "export_url": reverse("admin:django_whatsapp_campaign_export", args=[campaign.pk]),
        }
        # The campaign's own limits: its recipients' sending hours and its messages' expiry.
        hours = of_campaign(campaign)
        context["sending_hours"] = str(hours) if hours is not None else ""
        context["expires"] = (
            f"{when(campaign.expires_at)} ({time_zone_name()})" if campaign.expires_at else ""
        )
        # The expected duration and finish time (campaigns/estimate.py), or why there is none.
        context["estimate"], context["account_problem"] = page_estimate(campaign)
        return TemplateResponse(request, "django_whatsapp/admin/campaign/page.html", context)

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The page's live state as JSON (polled by static/django_whatsapp/campaign.js)."""
        campaign = self._campaign(request, object_id)
        progress = campaign_progress(campaign)
        summary = campaign_summary(campaign)
        notice = campaign_notice(campaign, account_state(campaign))
        state = progress_state(campaign, progress, summary, notice)
        # The counts, funnel and chart as the page renders them, to replace those parts.
        state["summary_html"] = render_to_string(
            "django_whatsapp/admin/message/summary.html", {"summary": summary}, request
        )
        state["chart_html"] = str(
            charts.render(
                charts.activity(Message.objects.filter(campaign=campaign)),
                title=_("Sends, deliveries and failures"),
            )
        )
        # The estimate from what is left now and the throughput measured so far.
        estimate, account_problem = page_estimate(campaign)
        state["estimate_html"] = render_to_string(
            "django_whatsapp/admin/campaign/estimate.html",
            {"estimate": estimate, "account_problem": account_problem},
            request,
        )
        return JsonResponse(state)

    def export_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        """The results as CSV, one row per message, with the audience file's own columns,
        streamed."""
        campaign = self._campaign(request, object_id)
        writer = csv.writer(display.Echo())
        rows = (
            writer.writerow([display.csv_cell(v) for v in row]) for row in campaign_export(campaign)
        )
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        filename = f"campaign-{campaign.pk}-results.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # -- changes -------------------------------------------------------------------------------

    def _action_view(self, action: str) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            asks = action in CONFIRMED
            if request.method not in (("GET", "POST") if asks else ("POST",)):
                return HttpResponseNotAllowed(["GET", "POST"] if asks else ["POST"])
            campaign = self._campaign(request, object_id)
            if not self.can_run(request, campaign):
                raise PermissionDenied
            if asks and (request.method == "GET" or "confirmed" not in request.POST):
                return self._confirmation(request, action, campaign)
            self._run(request, action, campaign)
            return HttpResponseRedirect(
                reverse("admin:django_whatsapp_campaign_change", args=[campaign.pk])
            )

        view.__name__ = f"campaign_{action}_view"
        return view

    def _confirmation(self, request: HttpRequest, action: str, campaign: Campaign) -> HttpResponse:
        """ "Are you sure?", saying what will happen to how many messages."""
        progress = campaign_progress(campaign)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Start the campaign?") if action == "start" else _("Cancel the campaign?"),
            "subtitle": None,
            "campaign": campaign,
            "original": campaign,
            "action": action,
            "progress": progress,
            "sender": campaign.source_addr,
            "several_accounts": admin_accounts.several(),
            "workers_problem": task_framework_problem() if action == "start" else None,
            "page_url": reverse("admin:django_whatsapp_campaign_change", args=[campaign.pk]),
        }
        return TemplateResponse(request, "django_whatsapp/admin/campaign/confirm.html", context)

    def _run(self, request: HttpRequest, action: str, campaign: Campaign) -> None:
        if action in STARTS:
            problem = task_framework_problem()
            if problem is not None:
                self.message_user(
                    request,
                    _("Nothing was started: %(problem)s") % {"problem": problem},
                    flash.ERROR,
                )
                return
        try:
            ACTIONS[action](campaign)
        except CampaignStateError as error:
            self.message_user(request, str(error), flash.ERROR)
            return
        except ImproperlyConfigured as error:
            self.message_user(
                request, _("Nothing was started: %(problem)s") % {"problem": error}, flash.ERROR
            )
            return
        done: dict[str, str] = {
            CStatus.RUNNING: _("Campaign %(name)s is running."),
            CStatus.SCHEDULED: _("Campaign %(name)s is scheduled for %(when)s."),
            CStatus.PAUSED: _("Campaign %(name)s is paused."),
            CStatus.CANCELLED: _("Campaign %(name)s is cancelled."),
        }
        template = done.get(campaign.status, _("Campaign %(name)s is %(status)s."))
        self.message_user(
            request,
            template
            % {
                "name": campaign.name,
                "when": f"{when(campaign.send_at)} ({time_zone_name()})",
                "status": campaign.get_status_display(),
            },
            flash.SUCCESS,
        )

    def _copy_view(self, *, only_failed: bool) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            campaign = self._campaign(request, object_id)
            if not self.has_add_permission(request):
                raise PermissionDenied
            back = reverse("admin:django_whatsapp_campaign_change", args=[campaign.pk])
            if only_failed and not failed_messages(campaign).exists():
                self.message_user(
                    request,
                    _("No message of this campaign failed: nothing to send again."),
                    flash.INFO,
                )
                return HttpResponseRedirect(back)
            name = _("%(name)s (again)") if only_failed else _("%(name)s (copy)")
            try:
                copy = services.copy_campaign(
                    campaign,
                    (name % {"name": campaign.name})[:255],
                    only_failed=only_failed,
                    created_by=request.user,
                )
            except (ValidationError, ImproperlyConfigured) as error:
                reason = " ".join(error.messages) if isinstance(error, ValidationError) else error
                self.message_user(
                    request, _("No copy was made: %(reason)s") % {"reason": reason}, flash.ERROR
                )
                return HttpResponseRedirect(back)
            self.message_user(request, created_message(copy), flash.SUCCESS)
            return HttpResponseRedirect(self._after_create(request, copy))

        view.__name__ = "campaign_send_again_view" if only_failed else "campaign_duplicate_view"
        return view
