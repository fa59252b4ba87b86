"""Contacts in the operator's console: every customer the app knows (who wrote to us, or whom an
operator or a keyword opted out), whether they may be sent to, the history of every opt-out and
opt-in with what asked for it (the customer's message and its inbound report, or the operator),
and their messages.

Read-only: a contact is made by a received message or an opt-out, opted out or in again on its
page (``change_contact``, logged in the admin's history, as on a conversation), and erased only
with ``whatsapp_purge --contact`` (a deleted row would forget the opt-out).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import window
from ..models import ConsentChange, Contact, Message
from ..numbers import search_digits
from . import display
from .conversations import opt_out_context, thread_url, window_badge
from .dates import when_column
from .display import CSS
from .guard import GuardedAdmin

#: The latest messages a contact's page lists.
RECENT = 20


class OptedOutFilter(admin.SimpleListFilter):
    title = gettext_lazy("may be sent to")
    parameter_name = "opted_out"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("no", gettext_lazy("Yes")), ("yes", gettext_lazy("No: opted out"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        if self.value() == "yes":
            return queryset.filter(opted_out_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(opted_out_at__isnull=True)
        return queryset


def messages_url(number: str) -> str:
    """The message list showing every message with ``number``."""
    return f"{reverse('admin:django_whatsapp_message_changelist')}?{urlencode({'q': number})}"


def opt_out_badge(contact: Contact) -> SafeString:
    if contact.opted_out_at is not None:
        return format_html(
            '<span class="wa-badge wa-tone-bad" data-opted-out="yes">{}</span>', _("Opted out")
        )
    return format_html(
        '<span class="wa-badge wa-tone-good" data-opted-out="no">{}</span>', _("May be sent to")
    )


@admin.register(Contact)
class ContactAdmin(GuardedAdmin, admin.ModelAdmin):
    class Media:
        css = CSS

    actions = None
    list_display = (
        "contact",
        "state",
        "opted_out_at_when",
        "last_inbound_at_when",
        "message_count",
    )
    list_filter = (OptedOutFilter,)
    search_fields = ("number", "name")
    search_help_text = gettext_lazy("Search by number or name.")
    opted_out_at_when = when_column(Contact, "opted_out_at")
    last_inbound_at_when = when_column(Contact, "last_inbound_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # erasure is whatsapp_purge --contact; a deleted row forgets the opt-out

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Contact], search_term: str
    ) -> tuple[QuerySet[Contact], bool]:
        # A number written any way is searched as its digits.
        term = search_digits(search_term) or search_term
        return super().get_search_results(request, queryset, term)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        count = (
            Message.objects.filter(destination_addr=OuterRef("number"))
            .order_by()
            .values("destination_addr")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(wa_messages=Coalesce(Subquery(count), 0))

    @admin.display(description=gettext_lazy("contact"), ordering="number")
    def contact(self, obj: Contact) -> SafeString:
        return format_html(
            "{}{}",
            f"+{obj.number}",
            format_html('<div class="help">{}</div>', obj.name) if obj.name else "",
        )

    @admin.display(description=gettext_lazy("may be sent to"), ordering="opted_out_at")
    def state(self, obj: Contact) -> SafeString:
        return opt_out_badge(obj)

    @admin.display(description=gettext_lazy("messages"), ordering="wa_messages")
    def message_count(self, obj: Contact) -> SafeString:
        count = getattr(obj, "wa_messages", 0)
        return format_html('<a href="{}">{}</a>', messages_url(obj.number), count)

    # -- a contact's page ----------------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The contact's page: read-only; the opt-out is changed with its button."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET"])
        contact = self.get_object(request, unquote(object_id))
        if contact is None:
            raise Http404(_("There is no such contact."))
        if not self.has_view_permission(request, contact):
            raise PermissionDenied
        number = contact.number
        recent = list(
            Message.objects.filter(destination_addr=number)
            .select_related("template")
            .order_by("-created_at", "-pk")[:RECENT]
        )
        total = Message.objects.filter(destination_addr=number).count()
        opt_out = opt_out_context(request, number)
        opt_out["next"] = request.get_full_path()
        state = window.state(number)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": str(contact),
            "subtitle": None,
            "original": contact,
            "contact": contact,
            "badge": opt_out_badge(contact),
            "window_badge": window_badge(state, opted_out=contact.opted_out_at is not None),
            "opt_out": opt_out,
            "rows": [
                {
                    "message": message,
                    "direction": display.DIRECTION_LABELS.get(message.direction, ""),
                    "preview": display.short_preview(message),
                    "badge": display.status_badge(message.status) if not message.is_inbound else "",
                    "url": reverse("admin:django_whatsapp_message_change", args=[message.pk]),
                }
                for message in recent
            ],
            "total": total,
            "history": [
                {"change": change, "asked_by": asked_by(change)}
                for change in contact.consent_changes.select_related("user").order_by("-at", "-pk")
            ],
            "conversation_url": thread_url(number) if number.isdigit() else "",
            "messages_url": messages_url(number),
        }
        return TemplateResponse(request, "django_whatsapp/admin/contact/page.html", context)


def _link(name: str, pk: Any, text: str) -> SafeString:
    url = reverse(f"admin:django_whatsapp_{name}", args=[pk])
    return format_html('<a href="{}">{}</a>', url, text)


def asked_by(change: ConsentChange) -> SafeString | str:
    """What asked for an opt-out or opt-in: links to the customer's message and its inbound
    report, or the operator."""
    parts = []
    if change.message_id is not None:
        parts.append(_link("message_change", change.message_id, _("the message")))
    if change.report_id is not None:
        parts.append(_link("inboundreport_change", change.report_id, _("its report")))
    if change.user is not None:
        parts.append(format_html("{}", change.user))
    if not parts:
        return "-"
    return format_html(", ".join(["{}"] * len(parts)), *parts)
