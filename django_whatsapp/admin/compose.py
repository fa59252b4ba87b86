"""Compose in the admin: the message's add and draft pages render the compose form (text, image
or template, one input per placeholder, a live preview, the account's sender), warn about a
recipient who opted out, and send after the admin's transaction committed the row (so that the
gateway's callbacks find it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _

from .. import optout, window
from ..forms import SEND_BUTTON, ComposeForm
from ..models import Message
from ..numbers import search_digits
from . import actions as admin_actions
from . import conversations as admin_conversations
from . import display

if TYPE_CHECKING:
    ComposeBase = admin.ModelAdmin[Message]
else:
    ComposeBase = object


class ComposeMixin(ComposeBase):
    """The compose side of the message admin (which provides ``has_send_permission`` and
    ``_require_send``)."""

    def has_send_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        raise NotImplementedError

    def _require_send(self, request: HttpRequest) -> None:
        raise NotImplementedError

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
        digits = search_digits(str(number or ""))
        if digits is not None and optout.is_opted_out(digits):
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
