"""The campaign form of "Add campaign", and the uploaded CSV file between its preview and the
campaign's creation.

The upload is capped at ``CAMPAIGN_UPLOAD_MAX_BYTES`` while it is received (:class:`CappedUpload`:
the rest of a larger body is read and dropped, never written anywhere), kept in
``default_storage`` under :data:`UPLOAD_DIR` for the operator who sent it (a token in the
session), read as a stream with the line of any UTF-8 error (:func:`open_upload`), and deleted
once the campaign is made, or a day later.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from ..campaigns.csvfile import Utf8Lines
from ..conf import get_settings
from ..forms import header_label, param_label, placeholder_context, template_choices_data
from ..models import Message, Template
from . import accounts as admin_accounts
from .dates import time_zone_name

Kind = Message.MessageType
#: Where the uploaded CSV files wait between the preview and the creation.
UPLOAD_DIR = "django_whatsapp/campaign_uploads"
#: An upload previewed but never created is deleted after this long.
UPLOAD_MAX_AGE = timedelta(days=1)
#: Where the service's field names show in the form.
FIELD_NAMES = {
    "template_params": "params",
    "destination_addr": "csv_file",
    "name": "name",
    "sending_hours": "hours_start",
    "expires_at": "expires_in_hours",
}
#: The longest expiry the form offers, in hours (30 days).
MAX_EXPIRY_HOURS = 720
LAUNCH_DRAFT, LAUNCH_NOW, LAUNCH_AT = "draft", "now", "at"
#: Where a template's parameters come from.
PARAMS_FIXED, PARAMS_COLUMNS = "fixed", "columns"


# -- the uploaded file, between the preview and the creation -----------------------------------


class CappedUpload(FileUploadHandler):
    """An upload handler, first in line, that stops the request's files at ``limit`` bytes:
    the rest of a larger body is read and dropped (Django's later handlers never see it), and
    :attr:`refused` says so. Installed before the request's body is read (see the admin's
    ``add`` URL)."""

    def __init__(self, limit: int, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.refused = False

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: Any,
        encoding: str | None = None,
    ) -> None:
        if content_length > self.limit + 64 * 1024:  # the form's own fields fit in 64 KB
            self.refused = True
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if self.refused:
            raise StopUpload(connection_reset=False)
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.refused = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_limit() -> int:
    return get_settings().CAMPAIGN_UPLOAD_MAX_BYTES


def too_large_message() -> str:
    megabytes = upload_limit() / (1024 * 1024)
    return _(
        "The file is larger than %(size)s MB, the most this site takes "
        "(DJANGO_WHATSAPP['CAMPAIGN_UPLOAD_MAX_BYTES']): nothing was kept. Split the audience "
        "into several campaigns."
    ) % {"size": f"{megabytes:g}"}


def _upload_name(token: str) -> str:
    return f"{UPLOAD_DIR}/{token}.csv"


def sweep_uploads() -> int:
    """Delete the uploads older than ``UPLOAD_MAX_AGE`` (previewed, never created); return how
    many. Storages that cannot list or date their files are left alone."""
    try:
        _folders, names = default_storage.listdir(UPLOAD_DIR)
    except (FileNotFoundError, NotImplementedError):
        return 0
    oldest = timezone.now() - UPLOAD_MAX_AGE
    swept = 0
    for name in names:
        stored = f"{UPLOAD_DIR}/{name}"
        try:
            if default_storage.get_modified_time(stored) < oldest:
                default_storage.delete(stored)
                swept += 1
        except (NotImplementedError, OSError):
            continue
    return swept


def store_upload(request: HttpRequest, upload: UploadedFile) -> str:
    """Store the uploaded CSV (in chunks) and return its token, remembered in the session so
    that only this operator can use it. Old abandoned uploads are swept first."""
    sweep_uploads()
    token = secrets.token_hex(16)
    default_storage.save(_upload_name(token), upload)
    tokens = [*request.session.get("wa_campaign_uploads", [])[-9:], token]
    request.session["wa_campaign_uploads"] = tokens
    return token


def upload_is_known(request: HttpRequest, token: str) -> bool:
    return (
        len(token) == 32
        and all(c in "0123456789abcdef" for c in token)
        and token in request.session.get("wa_campaign_uploads", [])
        and default_storage.exists(_upload_name(token))
    )


def open_upload(token: str) -> Utf8Lines:
    """The stored CSV read as UTF-8 text, a line at a time (a byte-order mark skipped; bytes
    that are not UTF-8 are an error naming their line)."""
    return Utf8Lines(default_storage.open(_upload_name(token), "rb"))


def forget_upload(request: HttpRequest, token: str) -> None:
    default_storage.delete(_upload_name(token))
    tokens = [t for t in request.session.get("wa_campaign_uploads", []) if t != token]
    request.session["wa_campaign_uploads"] = tokens


# -- the form ----------------------------------------------------------------------------------


class CampaignForm(forms.Form):
    """A campaign's content (the compose page's sections: text, image or template with its
    header and one input per placeholder), its account (with several), its CSV audience and when
    it goes out.

    Before the file is uploaded the columns are named; after, they are chosen from its header.
    A template's parameters come from CSV columns (``param_columns``, in placeholder order) or
    are the same for everyone (``param_1`` .. ``param_n``): ``param_source`` says which."""

    required_css_class = "required"

    name = forms.CharField(label=pgettext_lazy("title", "name"), max_length=255)
    message_type = forms.TypedChoiceField(
        label=gettext_lazy("type"),
        choices=[(int(k), k.label) for k in (Kind.TEXT, Kind.MEDIA, Kind.TEMPLATE)],
        coerce=int,
        initial=Kind.TEXT,
        widget=forms.RadioSelect(attrs={"class": "radiolist inline"}),
    )
    source_addr = forms.CharField(
        label=gettext_lazy("sender"),
        required=False,
        max_length=20,
        help_text=gettext_lazy("Leave empty to use the account's sender."),
    )
    text = forms.CharField(
        label=gettext_lazy("text"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}),
    )
    file_url = forms.CharField(
        label=gettext_lazy("image URL"),
        required=False,
        help_text=gettext_lazy("A public http:// or https:// link to a .jpg, .jpeg or .png image."),
        widget=forms.URLInput(attrs={"size": 60}),
    )
    caption = forms.CharField(
        label=gettext_lazy("caption"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )
    template = forms.ModelChoiceField(
        label=gettext_lazy("template"),
        queryset=Template.objects.filter(is_active=True),
        required=False,
        empty_label=gettext_lazy("Choose a template"),
    )
    header = forms.CharField(
        label=gettext_lazy("header"), required=False, widget=forms.TextInput(attrs={"size": 60})
    )
    param_source = forms.ChoiceField(
        label=gettext_lazy("parameters"),
        choices=[
            (PARAMS_FIXED, gettext_lazy("The same for everyone")),
            (PARAMS_COLUMNS, gettext_lazy("Each recipient's, from columns of the file")),
        ],
        initial=PARAMS_FIXED,
        required=False,
        widget=forms.RadioSelect(attrs={"class": "radiolist inline"}),
    )
    csv_file = forms.FileField(
        label=gettext_lazy("CSV file"),
        required=False,
        help_text=gettext_lazy(
            "UTF-8 text with a header line: a column for the number, columns for the "
            "template's parameters."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    upload = forms.CharField(required=False, widget=forms.HiddenInput)
    number_column = forms.CharField(
        label=gettext_lazy("number column"), initial="number", required=False, max_length=255
    )
    param_columns = forms.CharField(
        label=gettext_lazy("parameter columns"),
        required=False,
        help_text=gettext_lazy(
            "The columns holding the template's parameters, in the order of its "
            "placeholders, separated by commas."
        ),
        widget=forms.TextInput(attrs={"size": 60}),
    )
    launch = forms.ChoiceField(
        label=gettext_lazy("when"),
        choices=[
            (LAUNCH_DRAFT, gettext_lazy("Create as a draft; start it from its page")),
            (LAUNCH_NOW, gettext_lazy("Start sending now")),
            (LAUNCH_AT, gettext_lazy("Send at the time below")),
        ],
        initial=LAUNCH_DRAFT,
        required=False,
        widget=forms.RadioSelect(attrs={"class": "radiolist"}),
    )
    send_at = forms.DateTimeField(
        label=gettext_lazy("send at"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    hours_start = forms.TimeField(
        label=gettext_lazy("sending hours: from"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=gettext_lazy(
            "In each recipient's own time, read from their number (for example 09:00 to 20:00): "
            "those outside their hours wait for them. Leave both empty to send at any hour."
        ),
    )
    hours_end = forms.TimeField(
        label=gettext_lazy("sending hours: until"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    expires_in_hours = forms.IntegerField(
        label=gettext_lazy("expires after (hours)"),
        required=False,
        min_value=1,
        max_value=MAX_EXPIRY_HOURS,
        help_text=gettext_lazy(
            "Counted from the campaign's creation. A message not sent by then is never sent "
            "late: it ends not sent, “Expired”. Leave empty for no expiry."
        ),
    )

    def __init__(self, *args: Any, columns: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.columns = columns or []
        self.fields["send_at"].help_text = _("In the site's time zone, %(zone)s.") % {
            "zone": time_zone_name()
        }
        sender = admin_accounts.default_sender()
        self.fields["source_addr"].widget.attrs["placeholder"] = sender
        if admin_accounts.several():
            self.fields["account"] = admin_accounts.account_field()
        if self.columns:
            choices = [(c, c) for c in self.columns]
            self.fields["number_column"] = forms.ChoiceField(
                label=_("number column"), choices=choices
            )
            if "number" not in self.columns and "phone" in self.columns:
                self.initial.setdefault("number_column", "phone")
            self.fields["param_columns"].help_text = _(
                "Columns in the file: %(columns)s. Name the template's parameter columns in the "
                "order of its placeholders, separated by commas."
            ) % {"columns": ", ".join(self.columns)}
        self.chosen_template = self._chosen_template()
        self.param_names: list[str] = []
        template = self.chosen_template
        if template is not None:
            self.fields["header"].label = header_label(template.header_type)
            for number in range(1, template.placeholder_count + 1):
                name = f"param_{number}"
                self.param_names.append(name)
                self.fields[name] = forms.CharField(
                    label=param_label(number),
                    required=False,
                    help_text=placeholder_context(template.body, number),
                )
        for field in self.fields.values():
            field.label = capfirst(field.label)

    def _chosen_template(self) -> Template | None:
        raw = self.data.get("template") if self.is_bound else self.initial.get("template")
        try:
            pk = int(str(raw))
        except (TypeError, ValueError):
            return None
        return Template.objects.filter(is_active=True, pk=pk).first()

    @property
    def account(self) -> forms.BoundField | None:
        return self["account"] if "account" in self.fields else None

    @property
    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]

    @property
    def template_data(self) -> dict[str, dict[str, Any]]:
        return template_choices_data(Template.objects.filter(is_active=True))

    @property
    def needs_header(self) -> bool:
        template = self.chosen_template
        return template is not None and template.header_type != Template.HeaderType.NONE

    @property
    def from_columns(self) -> bool:
        """Whether the template's parameters come from columns of the file."""
        source = self.data.get("param_source") if self.is_bound else None
        return source == PARAMS_COLUMNS

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # One end of the sending hours without the other (an end that is not a time has its
        # own error already).
        start, end = data.get("hours_start"), data.get("hours_end")
        missing = "hours_end" if end is None else "hours_start"
        if (start is None) != (end is None) and missing not in self.errors:
            self.add_error(missing, _("Give both ends of the sending hours, or neither."))
        if data.get("launch") == LAUNCH_AT:
            when = data.get("send_at")
            if when is None:
                self.add_error("send_at", _("Give the time to send at."))
            elif when <= timezone.now():
                self.add_error("send_at", _("The time to send at is in the past."))
        template = data.get("template")
        if (
            data.get("message_type") == Kind.TEMPLATE
            and data.get("param_source") == PARAMS_COLUMNS
            and template is not None
            and template.placeholder_count
            and not self.column_names()
        ):
            self.add_error(
                "param_columns",
                _("Name the columns holding the template's %(count)d parameters.")
                % {"count": template.placeholder_count},
            )
        return data

    def column_names(self) -> list[str]:
        data = self.cleaned_data
        if data.get("message_type") != Kind.TEMPLATE or data.get("param_source") != PARAMS_COLUMNS:
            return []
        raw = data.get("param_columns") or ""
        return [c.strip() for c in raw.split(",") if c.strip()]

    def content(self) -> dict[str, Any]:
        """The content keyword arguments of the campaign services for the chosen type."""
        data = self.cleaned_data
        kind = data["message_type"]
        if kind == Kind.TEMPLATE:
            fixed = [data.get(name, "").strip() for name in self.param_names]
            return {
                "template": data["template"],
                "params": [] if self.column_names() else fixed,
                "header": data["header"].strip() or None,
            }
        if kind == Kind.MEDIA:
            return {"file_url": data["file_url"].strip(), "text": data["caption"] or None}
        return {"text": data["text"]}

    def limits(self) -> dict[str, Any]:
        """The campaign's sending hours and expiry, as ``create_campaign`` takes them."""
        data = self.cleaned_data
        start, end = data.get("hours_start"), data.get("hours_end")
        hours = data.get("expires_in_hours")
        return {
            "sending_hours": (start, end) if start is not None and end is not None else None,
            "expires_in": timedelta(hours=hours) if hours else None,
        }

    def show_service_errors(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):  # the file cannot be read
            self.add_error("csv_file", error)
            return
        kind = self.cleaned_data.get("message_type")
        for field, errors in error.error_dict.items():
            name: str | None = FIELD_NAMES.get(field, field)
            if name == "text" and kind == Kind.MEDIA:
                name = "caption"
            if name == "params":
                name = "param_columns" if self.column_names() else None
            self.add_error(name if name is not None and name in self.fields else None, errors)
