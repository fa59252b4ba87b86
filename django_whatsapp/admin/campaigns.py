"""The admin's campaign screens: the list, a campaign's page (live progress, counts, funnel,
pause / resume / cancel, rejected rows, CSV export) and "create from a CSV upload" with a preview.

Creating is two steps. The first POST stores the uploaded file (``default_storage``, under
``UPLOAD_DIR``, streamed in chunks) and shows a preview: the first rows as WhatsApp bubbles and
the bad rows with their line and reason; nothing is created. The second POST creates the
campaign from the stored file, read as a stream by ``services.campaign_from_csv``, then starts
or schedules it when asked and deletes the file. Every change goes through
:mod:`django_whatsapp.services` and needs the ``django_whatsapp.send_message`` permission and
the change permission on campaigns.
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import datetime, timedelta
from typing import IO, Any

from django import forms
from django.contrib import admin
from django.contrib import messages as flash
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

from .. import services
from ..campaigns.audience import AudiencePreview, csv_columns, preview_csv
from ..campaigns.control import CampaignStateError, campaign_export
from ..forms import header_label, param_label, placeholder_context, template_choices_data
from ..models import Campaign, CampaignChunk, Message, Template
from . import accounts as admin_accounts
from . import display
from .display import CSS

Kind = Message.MessageType
CStatus = Campaign.Status
#: Where the uploaded CSV files wait between the preview and the creation.
UPLOAD_DIR = "django_whatsapp/campaign_uploads"
#: An upload previewed but never created is deleted after this long.
UPLOAD_MAX_AGE = timedelta(days=1)
#: Bubbles shown in the preview, and bad rows listed (in the preview and on the page).
PREVIEW_ROWS = 5
REJECTIONS_SHOWN = 100
#: Where the service's field names show in the form.
FIELD_NAMES = {"template_params": "params", "destination_addr": "csv_file", "name": "name"}
LAUNCH_DRAFT, LAUNCH_NOW, LAUNCH_AT = "draft", "now", "at"
ACTIONS = {
    "start": services.start_campaign,
    "pause": services.pause_campaign,
    "resume": services.resume_campaign,
    "cancel": services.cancel_campaign,
}


# -- the uploaded file, between the preview and the creation -----------------------------------


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


def open_upload(token: str) -> IO[str]:
    """The stored CSV as text, read as a stream (UTF-8, a byte-order mark skipped; bytes that
    are not UTF-8 become U+FFFD, so their rows are rejected or shown as they are)."""
    raw = default_storage.open(_upload_name(token), "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def forget_upload(request: HttpRequest, token: str) -> None:
    default_storage.delete(_upload_name(token))
    tokens = [t for t in request.session.get("wa_campaign_uploads", []) if t != token]
    request.session["wa_campaign_uploads"] = tokens


# -- the form ----------------------------------------------------------------------------------


class CampaignForm(forms.Form):
    """A campaign's content (the compose page's sections: text, image or template with its
    header and one input per placeholder), its CSV audience and when it goes out.

    Before the file is uploaded the columns are named; after, they are chosen from its header.
    A template's parameters come from CSV columns (``param_columns``, in placeholder order) or
    are the same for everyone (``param_1`` .. ``param_n``)."""

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
        help_text=gettext_lazy("Leave empty to use the default sender."),
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
            "placeholders, separated by commas. Leave empty to give everyone the same "
            "parameters."
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
        widget=forms.RadioSelect,
    )
    send_at = forms.DateTimeField(
        label=gettext_lazy("send at"),
        required=False,
        help_text=gettext_lazy("In the site's time zone."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, columns: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.columns = columns or []
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
                "order of its placeholders, separated by commas; leave empty to give everyone "
                "the same parameters."
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
    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]

    @property
    def template_data(self) -> dict[str, dict[str, Any]]:
        return template_choices_data(Template.objects.filter(is_active=True))

    @property
    def needs_header(self) -> bool:
        template = self.chosen_template
        return template is not None and template.header_type != Template.HeaderType.NONE

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("launch") == LAUNCH_AT:
            when = data.get("send_at")
            if when is None:
                self.add_error("send_at", _("Give the time to send at."))
            elif when <= timezone.now():
                self.add_error("send_at", _("The time to send at is in the past."))
        if data.get("message_type") == Kind.TEMPLATE and data.get("param_columns"):
            given = [data.get(name, "").strip() for name in self.param_names]
            if any(given):
                self.add_error(
                    "param_columns",
                    _("Take the parameters from columns or give them below, not both."),
                )
        return data

    def column_names(self) -> list[str]:
        raw = self.cleaned_data.get("param_columns") or ""
        if self.cleaned_data.get("message_type") != Kind.TEMPLATE:
            return []
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

    def show_service_errors(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        kind = self.cleaned_data.get("message_type")
        for field, errors in error.error_dict.items():
            name: str | None = FIELD_NAMES.get(field, field)
            if name == "text" and kind == Kind.MEDIA:
                name = "caption"
            if name == "params":
                name = "param_columns" if self.column_names() else None
            self.add_error(name if name is not None and name in self.fields else None, errors)


# -- the admin ---------------------------------------------------------------------------------


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    # No list actions, so no bulk delete: a campaign being sent is cancelled first, then
    # deleted from its page (without overriding get_actions, whose signature Django 6.1 changes).
    actions = None

    class Media:
        css = CSS

    list_display = (
        "name",
        "status_badge",
        "progress",
        "counts",
        "send_at",
        # Not the author (on the campaign's page): the list fits 1280 px in every language.
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("name",)
    date_hierarchy = "created_at"

    # -- permissions ---------------------------------------------------------------------------

    def can_run(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        """Start, pause, resume, cancel: sending permission and change permission."""
        return request.user.has_perm(
            f"{self.opts.app_label}.send_message"
        ) and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(
            f"{self.opts.app_label}.send_message"
        ) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # A campaign being sent is cancelled first; its messages stay (their campaign unset).
        if obj is not None and obj.status in (CStatus.RUNNING, CStatus.SCHEDULED, CStatus.PAUSED):
            return False
        return super().has_delete_permission(request, obj)

    # -- the list ------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        # Each listed campaign's progress in the list's own query, from its chunks (a few
        # thousand rows for a million recipients), not from its messages.
        done = (
            CampaignChunk.objects.filter(campaign=OuterRef("pk"), state=CampaignChunk.State.DONE)
            .values("campaign")
            .annotate(sent=Sum("size"))
            .values("sent")
        )
        return super().get_queryset(request).annotate(wa_done=Subquery(done))

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, obj: Campaign) -> SafeString:
        return campaign_badge(obj.status)

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, obj: Campaign) -> SafeString:
        """The recipients of the chunks sent, of all; a finished campaign is at 100%."""
        total = obj.recipients_count
        done = getattr(obj, "wa_done", None) or 0
        percent = min(100, int(100 * done / total)) if total else 0
        if obj.is_finished:
            percent = 100
        return format_html(
            '<span class="wa-progress wa-progress-small" data-percent="{}">'
            '<span class="wa-progress-fill" style="width: {}%"></span></span> {}%',
            percent,
            percent,
            percent,
        )

    @admin.display(description=gettext_lazy("counts"))
    def counts(self, obj: Campaign) -> str:
        return ngettext(
            "%(recipients)d recipient, %(rejected)d rejected, %(duplicates)d repeated",
            "%(recipients)d recipients, %(rejected)d rejected, %(duplicates)d repeated",
            obj.recipients_count,
        ) % {
            "recipients": obj.recipients_count,
            "rejected": obj.rejected_count,
            "duplicates": obj.duplicates_count,
        }

    # -- urls ----------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/progress/",
                wrap(self.progress_view),
                name="{}_{}_progress".format(*info),
            ),
            path(
                "<path:object_id>/export/",
                wrap(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *(
                path(
                    f"<path:object_id>/{action}/",
                    wrap(self._action_view(action)),
                    name="{}_{}_{}".format(*info, action),
                )
                for action in ACTIONS
            ),
            *super().get_urls(),
        ]

    def _campaign(self, request: HttpRequest, object_id: str) -> Campaign:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("There is no such campaign."))
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    # -- create from a CSV upload --------------------------------------------------------------

    @transaction.non_atomic_requests
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """GET: the form. POST ``_preview``: store the file, show the preview. POST ``_create``
        (after a preview): create the campaign, start or schedule it when asked."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        preview: AudiencePreview | None = None
        token = ""
        columns: list[str] = []
        if request.method == "POST":
            token = request.POST.get("upload", "")
            upload = request.FILES.get("csv_file")
            if upload is not None:
                token = store_upload(request, upload)
            elif token and not upload_is_known(request, token):
                token = ""
            if token:
                with open_upload(token) as file:
                    columns = csv_columns(file)
            data = request.POST.copy()
            data["upload"] = token
            form = CampaignForm(data, request.FILES, columns=columns)
            if form.is_valid():
                if not token:
                    form.add_error("csv_file", _("Choose the CSV file of the audience."))
                elif not columns:
                    form.add_error("csv_file", _("The CSV file is empty: it needs a header line."))
                else:
                    preview = self._preview(form, token)
                    # Created only from a file already previewed, never from a fresh upload.
                    if preview is not None and "_create" in request.POST and upload is None:
                        created = self._create(request, form, token)
                        if created is not None:
                            where = "admin:django_whatsapp_campaign_changelist"
                            if self.has_view_permission(request, created):
                                where = "admin:django_whatsapp_campaign_change"
                            args = [created.pk] if where.endswith("change") else []
                            return HttpResponseRedirect(reverse(where, args=args))
                        preview = None
        else:
            form = CampaignForm(initial=request.GET.dict())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Create a campaign from a CSV file"),
            "form": form,
            "token": token,
            "preview": preview,
            "preview_rows": [(m, display.bubble(m)) for m in preview.messages] if preview else [],
            "template_data": form.template_data,
            "compose_i18n": {
                "empty": _("Type a message to see how it will look."),
                "choose_template": _("Choose a template to see it here."),
                "template": _("Template %(name)s (%(language)s)"),
            },
            "rejections_shown": REJECTIONS_SHOWN,
        }
        return TemplateResponse(request, "django_whatsapp/admin/campaign/add.html", context)

    def _preview(self, form: CampaignForm, token: str) -> AudiencePreview | None:
        data = form.cleaned_data
        try:
            with open_upload(token) as file:
                return preview_csv(
                    file,
                    number_column=data["number_column"] or "number",
                    param_columns=form.column_names(),
                    first=PREVIEW_ROWS,
                    max_rejections=REJECTIONS_SHOWN,
                    source_addr=data["source_addr"] or None,
                    **form.content(),
                )
        except ValidationError as error:
            form.show_service_errors(error)
            return None

    def _create(self, request: HttpRequest, form: CampaignForm, token: str) -> Campaign | None:
        data = form.cleaned_data
        launch = data["launch"] or LAUNCH_DRAFT
        send_at: datetime | None = data["send_at"] if launch == LAUNCH_AT else None
        try:
            with open_upload(token) as file:
                campaign = services.campaign_from_csv(
                    data["name"],
                    file,
                    number_column=data["number_column"] or "number",
                    param_columns=form.column_names(),
                    source_addr=data["source_addr"] or None,
                    send_at=send_at,
                    created_by=request.user,
                    account=data.get("account") or None,
                    **form.content(),
                )
        except ValidationError as error:
            form.show_service_errors(error)
            return None
        forget_upload(request, token)
        self.message_user(
            request,
            ngettext(
                "Campaign %(name)s created: %(count)d recipient, %(rejected)d rejected rows.",
                "Campaign %(name)s created: %(count)d recipients, %(rejected)d rejected rows.",
                campaign.recipients_count,
            )
            % {
                "name": campaign.name,
                "count": campaign.recipients_count,
                "rejected": campaign.rejected_count,
            },
            flash.SUCCESS,
        )
        if launch != LAUNCH_DRAFT:
            if self.can_run(request, campaign):
                self._run(request, "start", campaign)
            else:
                self.message_user(
                    request,
                    _("You may not start campaigns: this one stays a draft."),
                    flash.WARNING,
                )
        return campaign

    # -- a campaign's page ---------------------------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The campaign's page: read-only; its changes are the action buttons."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET"])
        campaign = self._campaign(request, object_id)
        summary = campaign_summary(campaign)
        messages_url = reverse("admin:django_whatsapp_message_changelist")
        first = (
            Message.objects.filter(campaign=campaign)
            .select_related("template")
            .order_by("pk")
            .first()
        )
        can_run = self.can_run(request, campaign)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": campaign.name,
            "subtitle": None,
            "campaign": campaign,
            "original": campaign,
            "badge": campaign_badge(campaign.status),
            "state": progress_state(campaign, summary),
            "summary": summary,
            "content": display.bubble(first) if first is not None else "",
            "rejections": list(campaign.rejections.order_by("line")[:REJECTIONS_SHOWN]),
            "actions": available_actions(campaign) if can_run else [],
            "can_delete": self.has_delete_permission(request, campaign),
            "messages_url": f"{messages_url}?{urlencode({'campaign__exact': campaign.pk})}",
            "progress_url": reverse("admin:django_whatsapp_campaign_progress", args=[campaign.pk]),
            "export_url": reverse("admin:django_whatsapp_campaign_export", args=[campaign.pk]),
            # The expected duration and finish time (campaigns/estimate.py).
            "estimate": None if campaign.is_finished else services.campaign_estimate(campaign),
        }
        return TemplateResponse(request, "django_whatsapp/admin/campaign/page.html", context)

    def progress_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The page's live state as JSON (polled by static/django_whatsapp/campaign.js)."""
        campaign = self._campaign(request, object_id)
        summary = campaign_summary(campaign)
        state = progress_state(campaign, summary)
        # The counts and funnel as the page renders them, to replace that part of the page.
        state["summary_html"] = render_to_string(
            "django_whatsapp/admin/message/summary.html", {"summary": summary}, request
        )
        return JsonResponse(state)

    def export_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        """The results as CSV, one row per message, streamed."""
        campaign = self._campaign(request, object_id)
        writer = csv.writer(_Echo())
        rows = (writer.writerow([_cell(v) for v in row]) for row in campaign_export(campaign))
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        filename = f"campaign-{campaign.pk}-results.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def _action_view(self, action: str) -> Any:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            campaign = self._campaign(request, object_id)
            if not self.can_run(request, campaign):
                raise PermissionDenied
            self._run(request, action, campaign)
            return HttpResponseRedirect(
                reverse("admin:django_whatsapp_campaign_change", args=[campaign.pk])
            )

        view.__name__ = f"campaign_{action}_view"
        return view

    def _run(self, request: HttpRequest, action: str, campaign: Campaign) -> None:
        try:
            ACTIONS[action](campaign)
        except CampaignStateError as error:
            self.message_user(request, str(error), flash.ERROR)
            return
        done: dict[str, str] = {
            CStatus.RUNNING: _("Campaign %(name)s is running."),
            CStatus.SCHEDULED: _("Campaign %(name)s is scheduled for %(when)s."),
            CStatus.PAUSED: _("Campaign %(name)s is paused."),
            CStatus.CANCELLED: _("Campaign %(name)s is cancelled."),
        }
        template = done.get(campaign.status, _("Campaign %(name)s is %(status)s."))
        when = (
            timezone.localtime(campaign.send_at).strftime("%Y-%m-%d %H:%M")
            if campaign.send_at
            else ""
        )
        self.message_user(
            request,
            template
            % {"name": campaign.name, "when": when, "status": campaign.get_status_display()},
            flash.SUCCESS,
        )


# -- helpers the page and its JSON share -------------------------------------------------------

#: The colour family of each campaign status badge.
CAMPAIGN_TONES: dict[str, str] = {
    CStatus.DRAFT: "quiet",
    CStatus.SCHEDULED: "quiet",
    CStatus.RUNNING: "progress",
    CStatus.PAUSED: "warn",
    CStatus.DONE: "good",
    CStatus.CANCELLED: "bad",
}


def campaign_badge(status: str) -> SafeString:
    label = CStatus(status).label if status in CStatus.values else status
    return format_html(
        '<span class="wa-badge wa-tone-{}" data-status="{}">{}</span>',
        CAMPAIGN_TONES.get(status, "quiet"),
        status,
        label,
    )


def available_actions(campaign: Campaign) -> list[tuple[str, str]]:
    """(action, button label) for the changes the campaign's status allows."""
    by_status: dict[str, list[str]] = {
        CStatus.DRAFT: ["start", "cancel"],
        CStatus.SCHEDULED: ["start", "pause", "cancel"],
        CStatus.RUNNING: ["pause", "cancel"],
        CStatus.PAUSED: ["resume", "cancel"],
    }
    allowed = by_status.get(campaign.status, [])
    labels = {
        "start": _("Start now"),
        "pause": _("Pause"),
        "resume": _("Resume"),
        "cancel": _("Cancel the campaign"),
    }
    return [(action, labels[action]) for action in allowed]


def campaign_summary(campaign: Campaign) -> display.Summary:
    """The campaign's counts per status and funnel (one query), each status linking to its
    messages in the message list."""
    messages_url = reverse("admin:django_whatsapp_message_changelist")

    def link(status: str) -> str:
        query = urlencode({"campaign__exact": str(campaign.pk), "status__exact": status})
        return f"{messages_url}?{query}"

    return display.status_summary(Message.objects.filter(campaign=campaign), link)


def progress_state(campaign: Campaign, summary: display.Summary) -> dict[str, Any]:
    """What the page shows live: the status, the progress (settled: past ``sending``), the
    counts per status and the delivery funnel."""
    counts = {item.status: item.count for item in summary.statuses}
    waiting = sum(counts.get(s, 0) for s in (Message.Status.DRAFT, Message.Status.QUEUED))
    in_flight = counts.get(Message.Status.SENDING, 0)
    settled = summary.total - waiting - in_flight
    percent = int(100 * settled / summary.total) if summary.total else 0
    if campaign.status == CStatus.DONE and not waiting and not in_flight:
        percent = 100
    return {
        "status": campaign.status,
        "status_label": str(campaign.get_status_display()),
        "status_badge": str(campaign_badge(campaign.status)),
        "finished": campaign.is_finished,
        "total": summary.total,
        "settled": settled,
        "waiting": waiting,
        "in_flight": in_flight,
        "percent": percent,
        "counts": [
            {
                "status": i.status,
                "label": i.label,
                "count": i.count,
                "badge": str(i.badge),
                "url": i.url,
            }
            for i in summary.statuses
        ],
        "submitted": summary.submitted,
        "funnel": [{"key": f.key, "count": f.count, "percent": f.percent} for f in summary.funnel],
    }


class _Echo:
    """A file-like object whose ``write`` returns what it was given: csv.writer's rows as
    strings, for a streamed response."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (a leading ``=``, ``@``, tab or
    carriage return is quoted with ``'``; numbers such as ``+380...`` stay as they are)."""
    first = value[:1]
    if first in ("=", "@", "\t", "\r") or (first in ("+", "-") and not _numeric(value)):
        return f"'{value}"
    return value


def _numeric(value: str) -> bool:
    return value[1:].replace(".", "", 1).isdigit()
