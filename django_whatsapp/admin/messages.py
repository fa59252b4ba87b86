"""The operator's console for messages: compose and send them, list, filter, count, chart and
export them, follow each one's statuses on its page (:mod:`.message_page`).

Every send, retry and status refresh goes through :mod:`django_whatsapp.services` and needs the
``django_whatsapp.send_message`` permission.
"""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..forms import ComposeForm
from ..models import Message
from ..numbers import search_digits
from . import accounts as admin_accounts
from . import actions as admin_actions
from . import bulk as admin_bulk
from . import charts, display
from .compose import ComposeMixin
from .dates import when_column
from .display import CSS
from .guard import GuardedAdmin, filter_problem, guard_urls
from .message_filters import (
    OUTBOUND,
    CampaignFilter,
    DirectionFilter,
    ErrorFilter,
    TagFilter,
    template_params_match,
)
from .message_page import MessagePageMixin
from .message_tools import export_rows, recipient_warnings
from .summary import status_summary

Status = Message.Status
COMPOSE_FIELDS = (
    "message_type",
    "destination_addr",
    "source_addr",
    "text",
    "file_url",
    "caption",
    "template",
    "header",
)


@admin.register(Message)
class MessageAdmin(MessagePageMixin, ComposeMixin, GuardedAdmin, admin.ModelAdmin):
    class Media:
        css = CSS

    form = ComposeForm
    # The message change form, with links to the message's conversation.
    change_form_template = "django_whatsapp/admin/conversation_change_form.html"
    change_list_template = "django_whatsapp/admin/message/change_list.html"
    list_display = (
        "recipient",
        "preview",
        "status_badge",
        "created_at_when",
    )
    list_filter = (
        "status",
        DirectionFilter,
        CampaignFilter,
        ErrorFilter,
        "message_type",
        "template",
        TagFilter,
        ("target_content_type", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("template", "campaign")
    created_at_when = when_column(Message, "created_at")
    submitted_at_when = when_column(Message, "submitted_at")
    expires_at_when = when_column(Message, "expires_at")
    send_after_when = when_column(Message, "send_after")
    status_changed_at_when = when_column(Message, "status_changed_at")
    date_hierarchy = "created_at"
    search_fields = ("destination_addr", "=provider_message_id", "text", "metadata")
    search_help_text = gettext_lazy(
        "Search by recipient, provider message id, text, template parameter or metadata value."
    )
    actions = (
        admin_actions.send_drafts,
        admin_actions.refresh_statuses,
        admin_actions.retry_not_sent,
    )
    view_fieldsets: Any = (
        (
            None,
            {
                "fields": (
                    "status_badge",
                    "error_details",
                    "recipient",
                    "source_addr",
                    "account_name",
                    "campaign_link",
                )
            },
        ),
        (gettext_lazy("Content"), {"fields": ("message_type", "content")}),
        (
            gettext_lazy("Delivery"),
            {
                "fields": (
                    "provider_message_id",
                    "attempts",
                    ("created_at_when", "submitted_at_when", "status_changed_at_when"),
                    ("expires_at_when", "send_after_when"),
                    "created_by",
                    "uuid",
                )
            },
        ),
        (
            gettext_lazy("Links and metadata"),
            {"fields": ("target_link", "tag_list", "metadata_json", "idempotency_key")},
        ),
        (gettext_lazy("Status timeline"), {"fields": ("timeline",)}),
    )
    #: A message a customer sent us: no delivery, no status timeline.
    inbound_fieldsets: Any = (
        (None, {"fields": ("direction_label", "customer", "source_addr", "created_at_when")}),
        (gettext_lazy("Content"), {"fields": ("message_type", "content")}),
        (gettext_lazy("Received"), {"fields": ("inbound_report_links",)}),
    )

    # -- permissions ---------------------------------------------------------------------------

    def has_send_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.send_message")

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        # Only a draft can be edited; a message that went out is read-only.
        if obj is not None and obj.status != Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def _require_send(self, request: HttpRequest) -> None:
        if not self.has_send_permission(request):
            raise PermissionDenied

    # -- accounts: a column, a filter and a compose choice with several accounts ---------------

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = tuple(super().get_list_display(request))
        return (*shown, "account") if admin_accounts.several() else shown

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = tuple(super().get_list_filter(request))
        return (*filters, "account") if admin_accounts.several() else filters

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "account":
            return admin_accounts.account_field()
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # -- the list ------------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("recipient"), ordering="destination_addr")
    def recipient(self, obj: Message) -> str:
        return display.recipient(obj)

    @admin.display(description=gettext_lazy("preview"))
    def preview(self, obj: Message) -> SafeString | str:
        """What the message says, and the campaign it belongs to."""
        text = display.short_preview(obj)
        if obj.campaign_id is None:
            return text
        return format_html(
            '{}<div class="wa-list-campaign">{} <a href="?{}">{}</a></div>',
            text,
            _("Campaign:"),
            urlencode({CampaignFilter.parameter_name: obj.campaign_id}),
            obj.campaign.name if obj.campaign is not None else obj.campaign_id,
        )

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: Message) -> SafeString:
        """The status, and for a failed message what went wrong, in a few words."""
        badge = display.status_badge(obj.status)
        if not obj.error_name and not obj.error_message:
            return badge
        why = display.explain_error(obj, look_up=False)
        if why is None:
            return badge
        return format_html('{}<div class="wa-list-error">{}</div>', badge, why.title)

    @admin.display(description=gettext_lazy("account"))
    def account_name(self, obj: Message) -> str:
        return obj.account

    @admin.display(description=gettext_lazy("campaign"))
    def campaign_link(self, obj: Message) -> SafeString | str:
        if obj.campaign_id is None:
            return "-"
        url = reverse("admin:django_whatsapp_campaign_change", args=[obj.campaign_id])
        name = obj.campaign.name if obj.campaign is not None else obj.campaign_id
        return format_html('<a href="{}">{}</a>', url, name)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        # A number written any way is searched as its digits (one number, one person).
        search_term = search_digits(search_term) or search_term
        results, duplicates = super().get_search_results(request, queryset, search_term)
        in_params = template_params_match(queryset, search_term)
        if in_params is None:
            return results, duplicates
        return queryset.filter(Q(pk__in=results.values("pk")) | Q(pk__in=in_params)), duplicates

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and request.POST.get("action") in admin_actions.SEND_ACTIONS:
            # A forged POST of a send action is refused outright, not silently ignored.
            self._require_send(request)
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if isinstance(response, TemplateResponse) and context and "cl" in context:
            cl = context["cl"]
            # What we sent: a received message has no delivery to count.
            context["wa_can_send"] = self.has_send_permission(request) and self.has_add_permission(
                request
            )
            # The rows the list counts, every filter and the search applied; the statuses link
            # to the outgoing messages of each (a received message has no delivery).
            context["wa_summary"] = status_summary(
                cl.queryset,
                lambda status: cl.get_query_string(
                    {"status__exact": status, DirectionFilter.parameter_name: OUTBOUND}
                ),
            )
            context["wa_chart"] = charts.render(
                charts.activity(cl.queryset), title=_("Sends, deliveries and failures")
            )
            query = request.GET.urlencode()
            export = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_export")
            context["wa_export_url"] = f"{export}?{query}" if query else export
        return response

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The list's messages, every filter and the search applied, as CSV, streamed."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        problem = filter_problem(request, self.model)
        if problem is not None:
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(
                _("The filters of this list are not valid."),
                content_type="text/plain; charset=utf-8",
            )
        writer = csv.writer(display.Echo())
        cell = display.csv_cell
        rows = (writer.writerow([cell(v) for v in row]) for row in export_rows(changelist.queryset))
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="whatsapp-messages.csv"'
        return response

    def recipient_check_view(self, request: HttpRequest) -> JsonResponse:
        """What compose says while the number is typed: whether it opted out (a message to it
        would be refused), and whether its 24-hour window is closed (only a template goes)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return JsonResponse({"warnings": recipient_warnings(request.GET.get("number", ""))})

    # -- compose and follow --------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Message | None = None) -> Any:
        if obj is None or obj.status == Status.DRAFT:
            several = admin_accounts.several()
            return (
                (None, {"fields": (*COMPOSE_FIELDS, "account") if several else COMPOSE_FIELDS}),
            )
        if obj.is_inbound:
            return self.inbound_fieldsets
        # Rows with nothing to say are left out: what went wrong when nothing did, the account
        # with one account, the campaign of a message sent on its own.
        left_out = set()
        if display.explain_error(obj) is None:
            left_out.add("error_details")
        if not admin_accounts.several():
            left_out.add("account_name")
        if obj.campaign_id is None:
            left_out.add("campaign_link")
        (name, options), *rest = self.view_fieldsets
        fields = tuple(f for f in options["fields"] if f not in left_out)
        return ((name, {**options, "fields": fields}), *rest)

    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> Any:
        if obj is None or obj.status == Status.DRAFT:
            return ()
        if obj.is_inbound:
            return admin.utils.flatten_fieldsets(self.inbound_fieldsets)
        return admin.utils.flatten_fieldsets(self.get_fieldsets(request, obj))

    def get_form(
        self, request: HttpRequest, obj: Message | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Message]]:
        if obj is not None and obj.status != Status.DRAFT:
            kwargs["form"] = ModelForm
        return super().get_form(request, obj, change, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        own = [
            path(
                "send-to-many/",
                # Each message is committed before its request goes out: never in a transaction.
                transaction.non_atomic_requests(self.admin_site.admin_view(self.bulk_view)),
                name="{}_{}_bulk".format(*info),
            ),
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "recipient-check/",
                self.admin_site.admin_view(self.recipient_check_view),
                name="{}_{}_recipient_check".format(*info),
            ),
            path(
                "<path:object_id>/refresh/",
                self.admin_site.admin_view(self.refresh_view),
                name="{}_{}_refresh".format(*info),
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name="{}_{}_retry".format(*info),
            ),
        ]
        return [*guard_urls(own), *super().get_urls()]

    def bulk_view(self, request: HttpRequest) -> HttpResponse:
        return admin_bulk.bulk_send_view(self, request)

    def _posted_message(self, request: HttpRequest, object_id: str) -> Message:
        self._require_send(request)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("There is no such message."))
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    def _back(self, obj: Message) -> HttpResponse:
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))

    def refresh_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._posted_message(request, object_id)
        admin_actions.refresh_one(self, request, obj)
        return self._back(obj)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._posted_message(request, object_id)
        admin_actions.retry_one(self, request, obj)
        return self._back(obj)
