"""Templates in the admin: placeholders highlighted, a "Send a test" link to compose."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..forms import TemplateAdminForm
from ..models import Message, Template
from . import display
from .dates import when_column
from .display import CSS
from .guard import GuardedAdmin


@admin.register(Template)
class TemplateAdmin(GuardedAdmin, admin.ModelAdmin):
    class Media:
        css = CSS

    form = TemplateAdminForm
    change_form_template = "django_whatsapp/admin/template/change_form.html"
    list_display = (
        "name",
        "language_code",
        "header_type",
        "placeholders",
        "is_active",
        "updated_at_when",
        "send_test",
    )
    updated_at_when = when_column(Template, "updated_at")
    list_editable = ("is_active",)
    list_filter = ("is_active", "language_code", "header_type")
    search_fields = ("name", "body")
    actions = ("activate", "deactivate")
    readonly_fields = ("highlighted_body",)
    fieldsets = (
        (
            None,
            {"fields": ("name", "namespace", ("language_code", "language_policy"), "is_active")},
        ),
        (gettext_lazy("Content"), {"fields": ("header_type", "body", "highlighted_body")}),
        (gettext_lazy("Advanced"), {"fields": ("components",), "classes": ("collapse",)}),
    )

    @admin.display(description=gettext_lazy("placeholders"))
    def placeholders(self, obj: Template) -> int:
        return obj.placeholder_count

    @admin.display(description=gettext_lazy("body with placeholders"))
    def highlighted_body(self, obj: Template) -> SafeString:
        return format_html(
            '<div class="wa-highlighted" id="wa-highlighted-body">{}</div>',
            display.highlight_placeholders(obj.body),
        )

    def send_test_url(self, obj: Template) -> str:
        query = urlencode({"message_type": int(Message.MessageType.TEMPLATE), "template": obj.pk})
        return f"{reverse('admin:django_whatsapp_message_add')}?{query}"

    @admin.display(description=gettext_lazy("test"))
    def send_test(self, obj: Template) -> SafeString | str:
        if not obj.is_active:
            return "-"
        return format_html(
            '<a class="wa-send-test" href="{}">{}</a>', self.send_test_url(obj), _("Send a test")
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Template | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            context["send_test_url"] = self.send_test_url(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description=gettext_lazy("Activate selected templates"), permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Template]) -> None:
        count = queryset.update(is_active=True)
        self.message_user(
            request,
            ngettext("%(count)d template activated.", "%(count)d templates activated.", count)
            % {"count": count},
        )

    @admin.action(description=gettext_lazy("Deactivate selected templates"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Template]) -> None:
        count = queryset.update(is_active=False)
        self.message_user(
            request,
            ngettext("%(count)d template deactivated.", "%(count)d templates deactivated.", count)
            % {"count": count},
        )
