"""The operator's forms: compose a message, edit a template.

The compose form checks a message with the same rules as the services
(:func:`django_whatsapp.validation.validate_message`) and shows each error on its field.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.forms.utils import ErrorDict
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import window
from .conf import get_settings
from .models import PLACEHOLDER_RE, Message, Template, placeholder_number
from .validation import validate_message

Kind = Message.MessageType

#: The fields each message type uses; the others are cleared when the message is saved.
TYPE_FIELDS: dict[int, tuple[str, ...]] = {
    Kind.TEXT: ("text",),
    Kind.MEDIA: ("file_url", "caption"),
    Kind.TEMPLATE: ("template", "header"),
}
#: The name of the submit button that re-renders the form (for browsers without JavaScript).
REFRESH_BUTTON = "_refresh"
#: The name of the submit button that saves and sends.
SEND_BUTTON = "_send"


def template_compose_url(number: str) -> str:
    """The admin's compose page with a template message to ``number`` chosen."""
    query = urlencode({"message_type": str(int(Kind.TEMPLATE)), "destination_addr": number})
    return f"{reverse('admin:django_whatsapp_message_add')}?{query}"


def copy_compose_url(message: Message) -> str:
    """The admin's compose page filled with ``message``'s recipient, sender and content, to
    correct and send as a new message."""
    fields: dict[str, str] = {
        "message_type": str(int(message.message_type)),
        "destination_addr": message.destination_addr,
        "source_addr": message.source_addr,
    }
    if message.message_type == Kind.MEDIA:
        fields.update(file_url=message.file_url, caption=message.text)
    elif message.message_type == Kind.TEMPLATE and message.template_id is not None:
        fields["template"] = str(message.template_id)
        for number, value in enumerate(message.template_body_params, start=1):
            fields[f"param_{number}"] = value
        if message.template_header:
            fields["header"] = message.template_header
    else:
        fields["text"] = message.text
    query = urlencode({name: value for name, value in fields.items() if value})
    return f"{reverse('admin:django_whatsapp_message_add')}?{query}"


def window_closed_message(number: str) -> SafeString:
    """Why a text or image to ``number`` is refused, with the way to a template instead."""
    return format_html(
        '{} <a href="{}" class="wa-template-link">{}</a>',
        _(
            "The customer's 24-hour window is closed: they have not written in the last 24 "
            "hours, so only a template message can be sent now."
        ),
        template_compose_url(number),
        _("Write a template message instead."),
    )


#: The partial word at each end of a cut-out context (applied to at most ``width`` characters).
_CUT_FIRST_WORD = re.compile(r"^\S*\s")
_CUT_LAST_WORD = re.compile(r"\s\S*$")


def placeholder_context(body: str, number: int, width: int = 24) -> str:
    """The words around the first ``{{number}}`` of a template body, to label its input."""
    for match in PLACEHOLDER_RE.finditer(body):
        if placeholder_number(match.group(1)) == number:
            before = body[: match.start()][-width:]
            after = body[match.end() :][:width]
            before = _CUT_FIRST_WORD.sub("", before) if len(before) == width else before
            after = _CUT_LAST_WORD.sub("", after) if len(after) == width else after
            return f"{before}{{{{{number}}}}}{after}".strip()
    return ""


def param_label(number: int) -> str:
    return str(_("Placeholder {{%(number)d}}") % {"number": number})


def header_label(header_type: str) -> str:
    if header_type == Template.HeaderType.IMAGE:
        return str(_("Header image URL"))
    return str(_("Header text"))


def active_or(pk: int | None) -> Q:
    """Active templates, and the one a draft already uses even if it is no longer active."""
    query = Q(is_active=True)
    return query | Q(pk=pk) if pk is not None else query


def template_choices_data(templates: Any) -> dict[str, dict[str, Any]]:
    """What the compose page's script needs to know about each template, by primary key."""
    data: dict[str, dict[str, Any]] = {}
    for template in templates:
        count = template.placeholder_count
        data[str(template.pk)] = {
            "name": template.name,
            "language": template.language_code,
            "body": template.body,
            "header_type": template.header_type,
            "header_label": header_label(template.header_type),
            "params": [
                {
                    "name": f"param_{n}",
                    "label": param_label(n),
                    "help": placeholder_context(template.body, n),
                }
                for n in range(1, count + 1)
            ],
        }
    return data


class ComposeForm(forms.ModelForm):
    """A new message (or a draft being edited): text, image or template.

    Every section's fields are on the page (the page's script shows only the chosen type's);
    the fields of the other types are cleared on save. A template's placeholders become inputs
    ``param_1`` .. ``param_n`` for the template chosen in the submitted data or the initial
    data; without JavaScript the operator chooses a template and presses "Update form".
    """

    required_css_class = "required"

    destination_addr = forms.CharField(
        label=_("recipient"),
        max_length=40,
        error_messages={"required": _("Enter the recipient's phone number.")},
        help_text=_("The phone number in international format, e.g. +380 67 123 45 67."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
    )
    source_addr = forms.CharField(
        label=_("sender"),
        required=False,
        max_length=40,
        help_text=_("Leave empty to use the account's sender."),
    )
    text = forms.CharField(
        label=_("text"), required=False, widget=forms.Textarea(attrs={"rows": 5, "cols": 60})
    )
    file_url = forms.CharField(
        label=_("image URL"),
        required=False,
        help_text=_("A public http:// or https:// link to a .jpg, .jpeg or .png image."),
        widget=forms.URLInput(attrs={"size": 60}),
    )
    caption = forms.CharField(
        label=_("caption"),
        required=False,
        help_text=_("Optional text shown under the image."),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )
    template = forms.ModelChoiceField(
        label=_("template"),
        queryset=Template.objects.none(),
        required=False,
        empty_label=_("Choose a template"),
    )
    header = forms.CharField(
        label=_("header"), required=False, widget=forms.TextInput(attrs={"size": 60})
    )

    class Meta:
        model = Message
        fields = ("message_type", "destination_addr", "source_addr", "text", "file_url", "template")
        widgets = {"message_type": forms.RadioSelect(attrs={"class": "radiolist inline"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.template_id
        self.fields["template"].queryset = Template.objects.filter(  # type: ignore[attr-defined]
            active_or(current)
        )
        self.refresh_only = self.is_bound and REFRESH_BUTTON in self.data
        self.chosen_template = self._chosen_template()
        self.param_names: list[str] = []
        instance = self.instance
        if instance.pk is not None and instance.message_type == Kind.MEDIA:
            self.initial.setdefault("caption", instance.text)
            self.initial["text"] = ""
        # The sender left empty is the chosen account's (shown as the placeholder, which the
        # page's script changes with the account).
        known = get_settings().accounts
        account = instance.account if instance.account in known else get_settings().account
        self.fields["source_addr"].widget.attrs["placeholder"] = (
            get_settings(account).DEFAULT_SOURCE_ADDR or ""
        )
        self.fields["destination_addr"].widget.attrs["data-wa-check-url"] = reverse(
            "admin:django_whatsapp_message_recipient_check"
        )
        if instance.pk is not None:
            self.initial.setdefault("destination_addr", instance.destination_addr)
        template = self.chosen_template
        if template is not None and template.header_type == Template.HeaderType.IMAGE:
            self.fields["header"].widget.input_type = "url"
        stored = instance.template_body_params if instance.template_id else []
        if template is not None:
            self.fields["header"].label = header_label(template.header_type)
            if instance.template_header is not None:
                self.initial.setdefault("header", instance.template_header)
            for number in range(1, template.placeholder_count + 1):
                name = f"param_{number}"
                self.param_names.append(name)
                self.fields[name] = forms.CharField(
                    label=param_label(number),
                    required=False,
                    help_text=placeholder_context(template.body, number),
                )
                if number <= len(stored) and instance.template_id == template.pk:
                    self.initial.setdefault(name, stored[number - 1])
        for field in self.fields.values():
            field.label = capfirst(field.label)

    def _chosen_template(self) -> Template | None:
        if self.is_bound:
            raw = self.data.get(self.add_prefix("template"))
        else:
            raw = self.initial.get("template") or self.instance.template_id
        if isinstance(raw, Template):
            return raw
        try:
            pk = int(str(raw))
        except (TypeError, ValueError):
            return None
        queryset = self.fields["template"].queryset  # type: ignore[attr-defined]
        return queryset.filter(pk=pk).first()

    # -- the template's inputs, for the page -------------------------------------------------

    @property
    def recipient_field(self) -> forms.BoundField:
        """The recipient's input (the bulk form's is its list of recipients)."""
        return self["destination_addr"]

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]

    @property
    def template_data(self) -> dict[str, dict[str, Any]]:
        return template_choices_data(self.fields["template"].queryset)  # type: ignore[attr-defined]

    @property
    def needs_header(self) -> bool:
        template = self.chosen_template
        return template is not None and template.header_type != Template.HeaderType.NONE

    # -- validation --------------------------------------------------------------------------

    def full_clean(self) -> None:
        if self.refresh_only:
            # Only re-render with the chosen template's inputs: no errors, nothing saved.
            self._errors = ErrorDict()
            self.cleaned_data = {}
            return
        super().full_clean()

    def is_valid(self) -> bool:
        return not self.refresh_only and super().is_valid()

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind = data.get("message_type")
        if kind == Kind.TEXT:
            data["file_url"], data["template"] = "", None
        elif kind == Kind.MEDIA:
            data["text"], data["template"] = data.get("caption", ""), None
        elif kind == Kind.TEMPLATE:
            data["text"], data["file_url"] = "", ""
        if not data.get("source_addr"):
            # The chosen account's sender (the admin offers an account with several).
            data["source_addr"] = get_settings(data.get("account")).DEFAULT_SOURCE_ADDR or ""
        if kind == Kind.TEMPLATE:
            self.instance.template_params = {
                "body": [data.get(name) or "" for name in self.param_names],
                "header": data.get("header") or None,
            }
        else:
            self.instance.template_params = {}
        return data

    def _get_validation_exclusions(self) -> set[str]:
        # These fields are checked by validate_message, with the services' own messages.
        exclusions: set[str] = set(super()._get_validation_exclusions())  # type: ignore[misc]
        return exclusions | {"destination_addr", "source_addr", "text", "file_url", "template"}

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if "message_type" not in self.cleaned_data:
            return
        try:
            validate_message(self.instance)
        except ValidationError as error:
            self._show_service_errors(error)
        else:
            self._check_window()

    def _check_window(self) -> None:
        """With ``SERVICE_WINDOW_POLICY`` "enforce", a text or image about to be sent to a contact
        whose 24-hour window is closed is refused on the type field (a draft may still be saved)."""
        if SEND_BUTTON not in self.data or window.policy() != window.ENFORCE:
            return
        if window.closed_for(self.instance) is not None:
            self.add_error(
                "message_type",
                ValidationError(
                    window_closed_message(self.instance.destination_addr), code="window_closed"
                ),
            )

    def _show_service_errors(self, error: ValidationError) -> None:
        is_media = self.instance.message_type == Kind.MEDIA
        for field, errors in error.error_dict.items():
            if field == "text" and is_media:
                field = "caption"
            if field == "template_params":
                self._show_param_errors(errors)
                continue
            target = field if field in self.fields else None
            if target is not None and target in self.errors:
                continue  # the form already said what is wrong with this field
            self.add_error(target, errors)

    def _show_param_errors(self, errors: list[ValidationError]) -> None:
        if not self.param_names:
            if "template" not in self.errors:
                self.add_error("template", errors)
            return
        empty = [
            name
            for name in self.param_names
            if not (self.data.get(self.add_prefix(name)) or "").strip()
        ]
        for name in empty or self.param_names[:1]:
            self.add_error(name, errors)


class ReplyForm(forms.Form):
    """A text reply in a conversation."""

    text = forms.CharField(
        label=_("Reply"),
        max_length=4096,
        error_messages={"required": _("Type the reply.")},
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": _("Type a reply")}),
    )


class TemplateAdminForm(forms.ModelForm):
    """A template; its ``components`` must be a list of objects, each with a ``type``."""

    class Meta:
        model = Template
        fields = (
            "name",
            "namespace",
            "language_code",
            "language_policy",
            "header_type",
            "body",
            "components",
            "is_active",
        )
        widgets = {
            "body": forms.Textarea(
                attrs={"rows": 6, "cols": 70, "class": "wa-template-body-input"}
            ),
            "components": forms.Textarea(attrs={"rows": 8, "cols": 70, "spellcheck": "false"}),
        }

    def clean_components(self) -> Any:
        value = self.cleaned_data.get("components")
        if value in (None, "", [], {}):
            return None
        hint = _(
            'Components must be a JSON list of objects, each with a "type" such as "header", '
            '"body" or "button", e.g. [{"type": "body", "parameters": []}].'
        )
        if not isinstance(value, list):
            raise ValidationError(hint, code="not_a_list")
        for index, item in enumerate(value, start=1):
            if not isinstance(item, dict):
                raise ValidationError(
                    _("Item %(index)d of the components is not an object. %(hint)s"),
                    code="not_an_object",
                    params={"index": index, "hint": hint},
                )
            kind = item.get("type")
            if not isinstance(kind, str) or not kind.strip():
                raise ValidationError(
                    _('Item %(index)d of the components has no "type". %(hint)s'),
                    code="no_type",
                    params={"index": index, "hint": hint},
                )
        return value
