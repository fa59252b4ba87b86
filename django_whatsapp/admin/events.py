"""Status events in the admin: a read-only log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from ..models import StatusEvent
from . import display
from .dates import when_column
from .display import CSS
from .guard import GuardedAdmin


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
