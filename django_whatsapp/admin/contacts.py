"""Contacts in the admin: who wrote to us, whether they opted out, and the history of every
opt-out and opt-in with what asked for it (the customer's message and its inbound report, or the
operator). Read-only: opting out and in is done from a conversation's page (or by keyword)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import ConsentChange, Contact
from ..numbers import search_digits
from .display import CSS
from .guard import GuardedAdmin


def _link(name: str, pk: Any, text: str) -> SafeString:
    url = reverse(f"admin:django_whatsapp_{name}", args=[pk])
    return format_html('<a href="{}">{}</a>', url, text)


class ConsentHistoryInline(admin.TabularInline):
    """The contact's opt-outs and opt-ins, newest first, each with what asked for it."""

    model = ConsentChange
    extra = 0
    can_delete = False
    fields = ("at", "kind", "reason", "said", "asked_by")
    readonly_fields = fields
    ordering = ("-at", "-pk")
    verbose_name_plural = gettext_lazy("opt-out history")

    @admin.display(description=gettext_lazy("asked by"))
    def asked_by(self, obj: ConsentChange) -> SafeString | str:
        parts = []
        if obj.message_id is not None:
            parts.append(_link("message_change", obj.message_id, _("the message")))
        if obj.report_id is not None:
            parts.append(_link("inboundreport_change", obj.report_id, _("its report")))
        if obj.user is not None:
            parts.append(format_html("{}", obj.user))
        if not parts:
            return "-"
        return format_html(", ".join(["{}"] * len(parts)), *parts)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Erasing a person is ``whatsapp_purge --contact``: it leaves them nowhere.
        return False


@admin.register(Contact)
class ContactAdmin(GuardedAdmin, admin.ModelAdmin):
    class Media:
        css = CSS

    list_display = ("number", "name", "last_inbound_at", "opted_out_at")
    list_filter = (("opted_out_at", admin.EmptyFieldListFilter),)
    search_fields = ("number", "name")
    fields = (
        "number",
        "name",
        "last_inbound_at",
        "window_closed_at",
        "opted_out_at",
        "opt_out_reason",
        "created_at",
    )
    readonly_fields = fields
    inlines = (ConsentHistoryInline,)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Contact], search_term: str
    ) -> tuple[QuerySet[Contact], bool]:
        # A number written any way is searched as its digits.
        term = search_digits(search_term) or search_term
        return super().get_search_results(request, queryset, term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Erasing a person is ``whatsapp_purge --contact``: it leaves them nowhere.
        return False
