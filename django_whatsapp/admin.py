"""A plain admin for the three models; the operator's console builds on it."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Message, StatusEvent, Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "language_code", "header_type", "is_active", "updated_at")
    list_filter = ("is_active", "language_code", "header_type")
    search_fields = ("name", "body")


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    extra = 0
    can_delete = False
    fields = ("received_at", "status", "provider_status", "source", "payload")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("destination_addr", "message_type", "status", "created_at", "submitted_at")
    list_filter = ("status", "message_type")
    search_fields = ("destination_addr", "=provider_message_id", "text")
    date_hierarchy = "created_at"
    list_select_related = ("template",)
    readonly_fields = (
        "uuid",
        "provider_message_id",
        "status",
        "error_code",
        "error_name",
        "error_message",
        "attempts",
        "created_by",
        "created_at",
        "submitted_at",
        "status_changed_at",
    )
    inlines = (StatusEventInline,)


@admin.register(StatusEvent)
class StatusEventAdmin(admin.ModelAdmin):
    list_display = ("message", "status", "source", "received_at")
    list_filter = ("status", "source")
    list_select_related = ("message",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
