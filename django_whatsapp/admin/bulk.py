"""The admin's "Send to many" page: one text, image or template to many recipients at once.

A thin form over :func:`django_whatsapp.bulk.send_bulk`: the service validates, stores one
message per recipient and sends them (or queues them with ``SEND_ASYNC``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import bulk
from ..conf import get_settings
from ..forms import (
    REFRESH_BUTTON,
    header_label,
    param_label,
    placeholder_context,
    template_choices_data,
)
from ..models import Message, Template
from . import accounts as admin_accounts
from . import display

MAX_RECIPIENTS = 10_000
Kind = Message.MessageType


class BulkSendForm(forms.Form):
    """One text, image or template for many recipients, laid out and scripted like compose
    (``compose.html`` and ``compose.js``): the chosen type's section, one input per placeholder
    of the chosen template (``param_1`` .. ``param_n``), the preview, the default sender."""

    required_css_class = "required"

    recipients = forms.CharField(
        label=_("Recipients"),
        widget=forms.Textarea(attrs={"rows": 6, "cols": 40}),
        help_text=_("Phone numbers in international format: one per line, or separated by commas."),
    )
    source_addr = forms.CharField(
        label=_("Sender"),
        required=False,
        max_length=20,
        help_text=_("Leave empty to use the account's sender."),
    )
    message_type = forms.TypedChoiceField(
        label=_("Type"),
        choices=Kind.choices,
        coerce=int,
        initial=Kind.TEXT,
        widget=forms.RadioSelect(attrs={"class": "radiolist inline"}),
    )
    text = forms.CharField(
        label=_("Text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}),
        strip=False,
    )
    file_url = forms.CharField(
        label=_("Image URL"),
        required=False,
        help_text=_("A public http:// or https:// link to a .jpg, .jpeg or .png image."),
        widget=forms.URLInput(attrs={"size": 60}),
    )
    caption = forms.CharField(
        label=_("Caption"),
        required=False,
        help_text=_("Optional text shown under the image."),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )
    template = forms.ModelChoiceField(
        label=_("Template"),
        queryset=Template.objects.filter(is_active=True),
        required=False,
        empty_label=_("Choose a template"),
    )
    header = forms.CharField(
        label=_("Header"), required=False, widget=forms.TextInput(attrs={"size": 60})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refresh_only = self.is_bound and REFRESH_BUTTON in self.data
        # The sender left empty is the chosen account's (see admin/accounts.py).
        self.fields["source_addr"].widget.attrs["placeholder"] = (
            get_settings().DEFAULT_SOURCE_ADDR or ""
        )
        self.chosen_template = self._chosen_template()
        self.param_names: list[str] = []
        template = self.chosen_template
        if template is not None:
            self.fields["header"].label = header_label(template.header_type)
            if template.header_type == Template.HeaderType.IMAGE:
                self.fields["header"].widget.input_type = "url"
            for number in range(1, template.placeholder_count + 1):
                name = f"param_{number}"
                self.param_names.append(name)
                self.fields[name] = forms.CharField(
                    label=param_label(number),
                    required=False,
                    help_text=placeholder_context(template.body, number),
                )

    def _chosen_template(self) -> Template | None:
        raw = self.data.get("template") if self.is_bound else self.initial.get("template")
        try:
            pk = int(str(raw))
        except (TypeError, ValueError):
            return None
        return Template.objects.filter(is_active=True, pk=pk).first()

    # -- what compose.html shows ---------------------------------------------------------------

    @property
    def recipient_field(self) -> forms.BoundField:
        return self["recipients"]

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]

    @property
    def needs_header(self) -> bool:
        template = self.chosen_template
        return template is not None and template.header_type != Template.HeaderType.NONE

    @property
    def template_data(self) -> dict[str, dict[str, Any]]:
        return template_choices_data(self.fields["template"].queryset)  # type: ignore[attr-defined]

    # -- validation ----------------------------------------------------------------------------

    def is_valid(self) -> bool:
        return not self.refresh_only and super().is_valid()

    def clean_recipients(self) -> list[str]:
        recipients = bulk.parse_recipients(self.cleaned_data["recipients"])
        if not recipients:
            raise ValidationError(_("Enter at least one phone number."), code="required")
        if len(recipients) > MAX_RECIPIENTS:
            raise ValidationError(
                _("At most %(max)d recipients at once."),
                code="max",
                params={"max": MAX_RECIPIENTS},
            )
        return recipients

    def content(self) -> dict[str, Any]:
        """The keyword arguments of ``send_bulk`` for the chosen type."""
        data = self.cleaned_data
        kind = data["message_type"]
        if kind == Kind.TEMPLATE:
            return {
                "template": data["template"],
                "params": [(data.get(name) or "").strip() for name in self.param_names],
                "header": data["header"].strip() or None,
            }
        if kind == Kind.MEDIA:
            return {"file_url": data["file_url"].strip(), "text": data["caption"] or None}
        return {"text": data["text"]}

    def show_service_errors(self, error: ValidationError) -> None:
        """The service's errors on the fields they are about."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        is_media = self.cleaned_data.get("message_type") == Kind.MEDIA
        for field, errors in error.error_dict.items():
            if field == "destination_addr":
                name: str | None = "recipients"
            elif field == "text" and is_media:
                name = "caption"
            elif field == "template_params":
                empty = [n for n in self.param_names if not (self.data.get(n) or "").strip()]
                name = (empty or self.param_names or ["template"])[0]
            else:
                name = field if field in self.fields else None
            self.add_error(name, errors)


def _report(modeladmin: admin.ModelAdmin[Message], request: HttpRequest, result: Any) -> None:
    counts = ", ".join(
        f"{Message.Status(status).label}: {count}"
        for status, count in sorted(result.counts.items())
    )
    total = len(result.messages)
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d message created (%(counts)s).",
            "%(count)d messages created (%(counts)s).",
            total,
        )
        % {"count": total, "counts": counts or "-"},
        messages.SUCCESS if total else messages.WARNING,
    )
    if result.invalid:
        listed = "; ".join(f"{given}: {' '.join(why)}" for given, why in result.invalid.items())
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d number is not valid and was not sent: %(list)s",
                "%(count)d numbers are not valid and were not sent: %(list)s",
                len(result.invalid),
            )
            % {"count": len(result.invalid), "list": listed},
            messages.ERROR,
        )
    if result.opted_out:
        modeladmin.message_user(
            request,
            _("Not sent, the customer opted out: %(list)s")
            % {"list": ", ".join(f"+{number}" for number in result.opted_out)},
            messages.WARNING,
        )
    if result.duplicates:
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d number was listed more than once and sent once: %(list)s",
                "%(count)d numbers were listed more than once and sent once: %(list)s",
                len(result.duplicates),
            )
            % {"count": len(result.duplicates), "list": ", ".join(result.duplicates)},
            messages.WARNING,
        )


def bulk_send_view(modeladmin: admin.ModelAdmin[Message], request: HttpRequest) -> HttpResponse:
    """GET shows the form; POST sends through ``bulk.send_bulk`` and goes back to the list."""
    user = request.user
    if not (
        user.has_perm(f"{modeladmin.opts.app_label}.send_message")
        and modeladmin.has_add_permission(request)
    ):
        raise PermissionDenied
    form = BulkSendForm(request.POST if request.method == "POST" else None)
    if admin_accounts.several():
        form.fields["account"] = admin_accounts.account_field()
    if request.method == "POST" and form.is_valid():
        try:
            result = bulk.send_bulk(
                form.cleaned_data["recipients"],
                source_addr=form.cleaned_data["source_addr"] or None,
                created_by=user,
                account=form.cleaned_data.get("account") or None,
                **form.content(),
            )
        except ValidationError as error:
            form.show_service_errors(error)
        else:
            _report(modeladmin, request, result)
            info = modeladmin.opts.app_label, modeladmin.opts.model_name
            return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)))
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": _("Send to many"),
        "form": form,
        "template_data": form.template_data,
        "compose_i18n": display.compose_i18n(),
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "django_whatsapp/admin/message/bulk_send.html", context)
