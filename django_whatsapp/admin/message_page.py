"""What a message's page shows (its read-only rows): who and what, the object it is about, its
tags and metadata, what went wrong with what can help, and its status timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..forms import copy_compose_url, template_compose_url
from ..inputs import render_json
from ..models import Contact, Message
from . import display
from .dates import when

if TYPE_CHECKING:
    PageBase = admin.ModelAdmin[Message]
else:
    PageBase = object

Status = Message.Status


class MessagePageMixin(PageBase):
    """The read-only rows of a message's page (the message admin's ``view_fieldsets``)."""

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
