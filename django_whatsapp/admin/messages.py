"""The operator's console: compose and send messages, follow their statuses, manage templates.

Every send, retry and status refresh goes through :mod:`django_whatsapp.services` and needs the
``django_whatsapp.send_message`` permission.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import connections, router, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.forms import ModelForm
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import optout, window
from ..forms import SEND_BUTTON, ComposeForm, copy_compose_url, template_compose_url
from ..inputs import render_json
from ..metadata import has_tag
from ..models import Message, StatusEvent
from ..numbers import search_digits
from . import accounts as admin_accounts
from . import actions as admin_actions
from . import bulk as admin_bulk
from . import conversations as admin_conversations
from . import display
from .display import CSS
from .guard import GuardedAdmin, guard_urls

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
        "created_at",
    )
    list_filter = (
        "status",
        DirectionFilter,
        "message_type",
        "template",
        TagFilter,
        ("target_content_type", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("template",)
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
            {"fields": ("status_badge", "error_details", "recipient", "source_addr", "account")},
        ),
        (gettext_lazy("Content"), {"fields": ("message_type", "content")}),
        (
            gettext_lazy("Delivery"),
            {
                "fields": (
                    "provider_message_id",
                    "attempts",
                    ("created_at", "submitted_at", "status_changed_at"),
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
        (None, {"fields": ("direction_label", "customer", "source_addr", "created_at")}),
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
    def preview(self, obj: Message) -> str:
        return display.short_preview(obj)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: Message) -> SafeString:
        return display.status_badge(obj.status)

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
            context["wa_summary"] = display.status_summary(
                cl.queryset,
                lambda status: cl.get_query_string(
                    {"status__exact": status, DirectionFilter.parameter_name: OUTBOUND}
                ),
            )
        return response

    # -- compose and follow --------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Message | None = None) -> Any:
        if obj is None or obj.status == Status.DRAFT:
            several = admin_accounts.several()
            return (
                (None, {"fields": (*COMPOSE_FIELDS, "account") if several else COMPOSE_FIELDS}),
            )
        if obj.is_inbound:
            return self.inbound_fieldsets
        if display.explain_error(obj) is None:
            # Nothing went wrong: no "what went wrong" row.
            (name, options), *rest = self.view_fieldsets
            fields = tuple(f for f in options["fields"] if f != "error_details")
            return ((name, {**options, "fields": fields}), *rest)
        return self.view_fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> Any:
        if obj is None or obj.status == Status.DRAFT:
            return ()
        if obj.is_inbound:
            return admin.utils.flatten_fieldsets(self.inbound_fieldsets)
        return admin.utils.flatten_fieldsets(self.view_fieldsets)

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
                (reverse("admin:django_whatsapp_inboundreport_change", args=[r.pk]), r)
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
        # Without recursion: metadata stored before it was checked may be 900 levels deep.
        return format_html("<pre>{}</pre>", render_json(obj.metadata))

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
            compose_i18n=admin_bulk.compose_i18n(),
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


@admin.register(StatusEvent)
class StatusEventAdmin(GuardedAdmin, admin.ModelAdmin):
    class Media:
        css = CSS

    list_display = ("received_at", "message", "status_badge", "source", "provider_status")
    list_filter = ("status", "source")
    list_select_related = ("message",)
    date_hierarchy = "received_at"
    search_fields = ("message__destination_addr", "=message__provider_message_id")

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: StatusEvent) -> SafeString:
        return display.status_badge(obj.status)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
