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
from ..models import Message, Template
from . import accounts as admin_accounts

#: Where the service's field names show in the form.
FIELD_NAMES = {"template_params": "params", "destination_addr": "recipients"}
MAX_RECIPIENTS = 10_000


class BulkSendForm(forms.Form):
    recipients = forms.CharField(
        label=_("Recipients"),
        widget=forms.Textarea(attrs={"rows": 8, "cols": 40}),
        help_text=_("Phone numbers in international format: one per line, or separated by commas."),
    )
    message_type = forms.TypedChoiceField(
        label=_("Type"),
        choices=Message.MessageType.choices,
        coerce=int,
        initial=Message.MessageType.TEXT,
        widget=forms.RadioSelect,
    )
    text = forms.CharField(
        label=_("Text or caption"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40}),
        strip=False,
    )
    file_url = forms.CharField(label=_("Image URL"), required=False)
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=Template.objects.filter(is_active=True), required=False
    )
    params = forms.CharField(
        label=_("Template parameters"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text=_("One per line, in the order of the placeholders {{1}}, {{2}}..."),
    )
    header = forms.CharField(label=_("Template header (text or image URL)"), required=False)
    source_addr = forms.CharField(
        label=_("Sender"),
        required=False,
        max_length=20,
        help_text=_("Leave empty to use the default sender."),
    )

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
        if kind == Message.MessageType.TEMPLATE:
            return {
                "template": data["template"],
                "params": [p.strip() for p in data["params"].splitlines() if p.strip()],
                "header": data["header"].strip() or None,
            }
        if kind == Message.MessageType.MEDIA:
            return {"file_url": data["file_url"].strip(), "text": data["text"] or None}
        return {"text": data["text"]}


def _report(modeladmin: admin.ModelAdmin[Message], request: HttpRequest, result: Any) -> None:
    counts = ", ".join(f"{status}: {count}" for status, count in sorted(result.counts.items()))
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
            _("Not sent, the number is not valid: %(list)s") % {"list": listed},
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
            _("Listed more than once, sent once: %(list)s")
            % {"list": ", ".join(result.duplicates)},
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
            if hasattr(error, "error_dict"):
                for field, errors in error.error_dict.items():
                    name = FIELD_NAMES.get(field, field)
                    form.add_error(name if name in form.fields else None, errors)
            else:
                form.add_error(None, error)
        else:
            _report(modeladmin, request, result)
            info = modeladmin.opts.app_label, modeladmin.opts.model_name
            return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)))
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": _("Send to many"),
        "form": form,
        "adminform_fields": list(form),
    }
    return TemplateResponse(request, "django_whatsapp/admin/message/bulk_send.html", context)
