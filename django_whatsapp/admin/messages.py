"""The operator's console: compose and send messages, follow their statuses, manage templates.

Every send, retry and status refresh goes through :mod:`django_whatsapp.services` and needs the
``django_whatsapp.send_message`` permission.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, router, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
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
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import optout, window
from ..forms import SEND_BUTTON, ComposeForm, copy_compose_url, template_compose_url
from ..metadata import has_tag
from ..models import Campaign, Contact, Message, StatusEvent
from ..validation import clean_recipient
from . import accounts as admin_accounts
from . import actions as admin_actions
from . import bulk as admin_bulk
from . import charts, display
from . import conversations as admin_conversations
from .dates import when, when_column
from .display import CSS
from .guard import GuardedAdmin, filter_problem, guard_urls

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


class TagFilter(admin.SimpleListFilter):
    """The messages carrying one tag; offers the tags of the latest messages that have any."""

    title = gettext_lazy("tag")
    parameter_name = "tag"
    #: How many of the latest tagged messages the offered tags come from (one query).
    SAMPLE = 1000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = (
            Message.objects.exclude(tags=[])
            .order_by("-pk")
            .values_list("tags", flat=True)[: self.SAMPLE]
        )
        tags = {str(tag) for listed in recent if isinstance(listed, list) for tag in listed}
        return [(tag, tag) for tag in sorted(tags)[:100]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        tag = self.value()
        if not tag:
            return queryset
        features = connections[router.db_for_read(Message)].features
        return queryset.filter(
            has_tag(tag, supports_contains=features.supports_json_field_contains)
        )


OUTBOUND = Message.Direction.OUTBOUND


class CampaignFilter(admin.SimpleListFilter):
    """The messages of one campaign; offers the latest campaigns (and the one chosen)."""

    title = gettext_lazy("campaign")
    parameter_name = "campaign__id__exact"
    #: How many of the latest campaigns are offered.
    OFFERED = 20

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        newest = Campaign.objects.order_by("-created_at", "-pk").values_list("pk", "name")
        latest = list(newest[: self.OFFERED])
        chosen = self.value()
        known = chosen is not None and chosen.isascii() and chosen.isdigit() and len(chosen) <= 18
        if chosen is not None and known and all(str(pk) != chosen for pk, _name in latest):
            latest += list(Campaign.objects.filter(pk=int(chosen)).values_list("pk", "name"))
        return [(str(pk), name) for pk, name in latest]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        value = self.value()
        if not value:
            return queryset
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            return queryset.none()  # no campaign has such an id
        return queryset.filter(campaign_id=int(value))


class ErrorFilter(admin.SimpleListFilter):
    """The messages that failed with one error (as the gateway or this app named it), or with
    any; offers the errors of the latest failed messages."""

    title = gettext_lazy("error")
    parameter_name = "error"
    ANY = "*"
    #: How many of the latest failed messages the offered errors come from (one query).
    SAMPLE = 1000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        recent = (
            Message.objects.exclude(error_name="")
            .order_by("-pk")
            .values_list("error_name", flat=True)[: self.SAMPLE]
        )
        names = sorted(set(recent))[:30]
        return [(self.ANY, gettext_lazy("Any error")), *((name, name) for name in names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        value = self.value()
        if value == self.ANY:
            return queryset.exclude(error_name="")
        return queryset.filter(error_name=value) if value else queryset


class DirectionFilter(admin.SimpleListFilter):
    """Outgoing or incoming (the model's labels, "Sent" and "Received", read as statuses)."""

    title = gettext_lazy("direction")
    parameter_name = "direction__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(display.DIRECTION_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        value = self.value()
        if value in display.DIRECTION_LABELS:
            return queryset.filter(direction=value)
        return queryset


def template_params_match(queryset: QuerySet[Message], search_term: str) -> QuerySet[Any] | None:
    """The primary keys of the messages whose template parameters (or header) hold every word
    of ``search_term``: the values a template message's preview shows. ``None`` for no term."""
    words = search_term.split()
    if not words:
        return None
    params = queryset.annotate(_wa_params=Cast("template_params", TextField())).exclude(
        template_params={}
    )
    for word in words:
        # A JSON text may hold a non-ASCII value escaped (\u0410): either form matches.
        escaped = json.dumps(word)[1:-1]
        params = params.filter(Q(_wa_params__icontains=word) | Q(_wa_params__contains=escaped))
    return params.values("pk")


@admin.register(Message)
class MessageAdmin(GuardedAdmin, admin.ModelAdmin):
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
        term = search_term.strip()
        if term.startswith("+") and term[1:].replace(" ", "").replace("-", "").isdigit():
            search_term = term[1:].replace(" ", "").replace("-", "")
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
            context["wa_summary"] = display.status_summary(
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

    @admin.display(description=gettext_lazy("direction"))
    def direction_label(self, obj: Message) -> str:
        return str(display.DIRECTION_LABELS.get(obj.direction, obj.direction))

    @admin.display(description=gettext_lazy("customer"))
    def customer(self, obj: Message) -> str:
        return display.recipient(obj)

    @admin.display(description=gettext_lazy("inbound reports"))
    def inbound_report_links(self, obj: Message) -> SafeString | str:
        reports = list(obj.inbound_reports.order_by("pk"))
        if not reports:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (
                    reverse("admin:django_whatsapp_inboundreport_change", args=[r.pk]),
                    f"{r.method} {when(r.received_at)}: {r.get_outcome_display()}",
                )
                for r in reports
            ),
        )

    # -- the caller's own data: target, tags, metadata ------------------------------------------

    @admin.display(description=gettext_lazy("target"))
    def target_link(self, obj: Message) -> SafeString | str:
        """The object the message is about: a link to its admin page when it has one."""
        content_type = obj.target_content_type
        if content_type is None:
            return "-"
        target = obj.target
        model = content_type.model_class()
        if target is None:
            return _("%(type)s #%(id)s (no longer exists)") % {
                "type": content_type.name,
                "id": obj.target_object_id,
            }
        label = f"{content_type.name}: {target}"
        if model is None or model not in self.admin_site._registry:
            return label
        url = reverse(
            f"admin:{content_type.app_label}_{content_type.model}_change",
            args=[quote(target.pk)],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=gettext_lazy("tags"))
    def tag_list(self, obj: Message) -> SafeString | str:
        if not obj.tags:
            return "-"
        base = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return format_html_join(
            " ",
            '<a class="wa-tag" href="{}?{}">{}</a>',
            ((base, urlencode({"tag": tag}), tag) for tag in obj.tags),
        )

    @admin.display(description=gettext_lazy("metadata"))
    def metadata_json(self, obj: Message) -> SafeString | str:
        if not obj.metadata:
            return "-"
        text = json.dumps(obj.metadata, ensure_ascii=False, indent=2, sort_keys=True)
        return format_html("<pre>{}</pre>", text)

    @admin.display(description=gettext_lazy("content"))
    def content(self, obj: Message) -> SafeString:
        return display.bubble(obj)

    @admin.display(description=gettext_lazy("what went wrong"))
    def error_details(self, obj: Message) -> SafeString | str:
        why = display.explain_error(obj)
        if why is None:
            return "-"
        context: dict[str, Any] = {"why": why, "message": obj}
        if why.remedy == display.Remedy.TEMPLATE:
            context["template_url"] = template_compose_url(obj.destination_addr)
        elif why.remedy == display.Remedy.COPY and obj.status == Status.NOT_SENT:
            context["copy_url"] = copy_compose_url(obj)
        elif why.remedy == display.Remedy.OPT_IN:
            contact = Contact.objects.filter(number=obj.destination_addr).only("pk").first()
            if contact is not None:
                context["contact_url"] = reverse(
                    "admin:django_whatsapp_contact_change", args=[contact.pk]
                )
        return render_to_string("django_whatsapp/admin/message/error.html", context)

    @admin.display(description=gettext_lazy("events"))
    def timeline(self, obj: Message) -> SafeString:
        return render_to_string(
            "django_whatsapp/admin/message/timeline.html", {"events": list(obj.events.all())}
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Message | None = None,
    ) -> HttpResponse:
        form = context["adminform"].form
        compose = isinstance(form, ComposeForm)
        can_send = self.has_send_permission(request)
        if obj is not None and not compose:
            subtitle = (
                _("%(type)s message from %(recipient)s")
                if obj.is_inbound
                else _("%(type)s message to %(recipient)s")
            )
            context["subtitle"] = subtitle % {
                "type": obj.get_message_type_display(),
                "recipient": display.recipient(obj),
            }
        if obj is not None and obj.pk is not None:
            context.update(admin_conversations.message_tools(request, obj))
        if compose:
            self._warn_opted_out(request, form)
        context.update(
            compose=compose,
            can_send=can_send,
            template_data=form.template_data if compose else None,
            compose_i18n=display.compose_i18n(),
            show_refresh=bool(obj and can_send and obj.provider_message_id and not obj.is_final),
            show_retry=bool(obj and can_send and display.retry_helps(obj)),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _warn_opted_out(self, request: HttpRequest, form: Any) -> None:
        """On compose: say so when the recipient opted out (a send would be refused)."""
        number = (form.data.get("destination_addr") if form.is_bound else None) or (
            form.initial.get("destination_addr") or getattr(form.instance, "destination_addr", "")
        )
        digits = "".join(str(number or "").split()).replace("-", "").removeprefix("+")
        if digits.isascii() and digits.isdigit() and optout.is_opted_out(digits):
            self.message_user(
                request,
                _("%(number)s opted out: a message to them will not be sent.")
                % {"number": f"+{digits}"},
                messages.WARNING,
            )

    def save_model(self, request: HttpRequest, obj: Message, form: Any, change: bool) -> None:
        if not change and request.user.is_authenticated:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and SEND_BUTTON in request.POST:
            self._require_send(request)
        response = super().changeform_view(request, object_id, form_url, extra_context)
        # Sent only now, after the admin's transaction committed the row, so that the gateway's
        # callbacks find it.
        message = getattr(request, "_whatsapp_send", None)
        if isinstance(message, Message):
            warn = window.policy() == window.WARN and window.closed_for(message) is not None
            admin_actions.send_one(self, request, message)
            if warn:
                admin_conversations.warn_sent_anyway(self, request, message)
        return response

    def _send_after_save(self, request: HttpRequest, obj: Message) -> HttpResponse:
        request._whatsapp_send = obj  # type: ignore[attr-defined]
        return HttpResponseRedirect(
            reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        )

    def response_add(
        self, request: HttpRequest, obj: Message, post_url_continue: Any = None
    ) -> HttpResponse:
        if SEND_BUTTON in request.POST:
            return self._send_after_save(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Message) -> HttpResponse:
        if SEND_BUTTON in request.POST:
            return self._send_after_save(request, obj)
        return super().response_change(request, obj)

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


#: The columns of the message list's export.
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "direction",
    "account",
    "recipient",
    "sender",
    "type",
    "status",
    "text",
    "template",
    "template_parameters",
    "campaign",
    "provider_message_id",
    "error_code",
    "error_name",
    "error_message",
    "submitted_at",
    "status_changed_at",
)


def export_rows(queryset: QuerySet[Message]) -> Iterator[list[str]]:
    """A header, then one row per message of ``queryset`` (newest first), read as a stream."""
    yield list(EXPORT_COLUMNS)
    rows = (
        queryset.order_by("-created_at", "-pk")
        .values_list(
            "pk",
            "created_at",
            "direction",
            "account",
            "destination_addr",
            "source_addr",
            "message_type",
            "status",
            "text",
            "template__name",
            "template_params",
            "campaign__name",
            "provider_message_id",
            "error_code",
            "error_name",
            "error_message",
            "submitted_at",
            "status_changed_at",
        )
        .iterator(chunk_size=2000)
    )
    kinds = dict(Message.MessageType.choices)
    for row in rows:
        pk, created, direction, account, number, sender, kind, status, text, *rest = row
        template, params, campaign, provider_id, code, name, detail, submitted, changed = rest
        body = (params or {}).get("body") if isinstance(params, dict) else None
        yield [
            str(pk),
            created.isoformat() if created else "",
            direction,
            account,
            f"+{number}" if str(number).isdigit() else str(number),
            sender,
            str(kinds.get(kind, kind)),
            status,
            text,
            template or "",
            " | ".join(str(p) for p in body) if isinstance(body, list) else "",
            campaign or "",
            "" if provider_id is None else str(provider_id),
            "" if code is None else str(code),
            name,
            detail,
            submitted.isoformat() if submitted else "",
            changed.isoformat() if changed else "",
        ]


def recipient_warnings(raw: str) -> list[str]:
    """What compose warns about a recipient being typed: opted out (with when and why), or a
    closed 24-hour window under the ``warn`` and ``enforce`` policies."""
    try:
        number = clean_recipient(raw)
    except ValidationError:
        return []
    warnings = []
    contact = (
        Contact.objects.filter(number=number, opted_out_at__isnull=False)
        .only("opted_out_at", "opt_out_reason")
        .first()
    )
    if contact is not None and contact.opted_out_at is not None:
        warnings.append(
            _("+%(number)s opted out on %(time)s (%(reason)s): a message to them will not be sent.")
            % {
                "number": number,
                "time": when(contact.opted_out_at),
                "reason": contact.opt_out_reason or _("no reason kept"),
            }
        )
    elif window.policy() != window.OFF and not window.state(number).is_open:
        warnings.append(
            _(
                "The customer's 24-hour window is closed: only a template message can be sure "
                "to go out."
            )
        )
    return warnings


@admin.register(StatusEvent)
class StatusEventAdmin(GuardedAdmin, admin.ModelAdmin):
    class Media:
        css = CSS

    list_display = ("received_at_when", "message", "status_badge", "source", "provider_status")
    list_filter = ("status", "source")
    list_select_related = ("message",)
    date_hierarchy = "received_at"
    search_fields = ("message__destination_addr", "=message__provider_message_id")
    received_at_when = when_column(StatusEvent, "received_at")

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: StatusEvent) -> SafeString:
        return display.status_badge(obj.status)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
