"""The admin's "Add campaign": a CSV upload, capped while it is received, previewed (the first
rows as bubbles, the rejected and repeated rows, the counts the campaign will have), then the
campaign created from it all or nothing, and started or scheduled when asked (if the task
framework can send it here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib import messages as flash
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _

from .. import services
from ..campaigns.audience import AudiencePreview, csv_columns, preview_csv
from ..checks import task_framework_problem
from ..models import Campaign
from . import display
from .campaign_form import (
    LAUNCH_AT,
    LAUNCH_DRAFT,
    CampaignForm,
    CappedUpload,
    forget_upload,
    open_upload,
    store_upload,
    too_large_message,
    upload_is_known,
    upload_limit,
)
from .campaign_state import created_message, with_reasons

if TYPE_CHECKING:
    from django.contrib import admin

    AddBase = admin.ModelAdmin[Campaign]
else:
    AddBase = object

#: Bubbles shown in the preview, and bad rows listed (in the preview and on the page).
PREVIEW_ROWS = 5
REJECTIONS_SHOWN = 100


class CampaignAddMixin(AddBase):
    """``add_view`` of the campaign admin (which provides ``can_run`` and ``_run``)."""

    def can_run(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        raise NotImplementedError

    def _run(self, request: HttpRequest, action: str, campaign: Campaign) -> None:
        raise NotImplementedError

    @staticmethod
    def _capped(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """``view`` with :class:`CappedUpload` first among the request's upload handlers. They
        must be in place before the body is read: this wrapper is exempt from the CSRF
        middleware (which would read it first), and the admin view inside checks the token."""

        @wraps(view)
        def capped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            handler = CappedUpload(upload_limit(), request)
            request.upload_handlers.insert(0, handler)
            request._wa_capped = handler  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        capped.csrf_exempt = True  # type: ignore[attr-defined]
        return capped

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
        if request.method == "POST":
            capped = getattr(request, "_wa_capped", None)
            upload = request.FILES.get("csv_file")
            too_large = (capped is not None and capped.refused) or (
                upload is not None and upload.size is not None and upload.size > upload_limit()
            )
            token = request.POST.get("upload", "")
            if too_large:
                upload, token = None, ""
            elif upload is not None:
                token = store_upload(request, upload)
            elif token and not upload_is_known(request, token):
                token = ""
            columns: list[str] = []
            unreadable: ValidationError | None = None
            if token:
                try:
                    with open_upload(token) as file:
                        columns = csv_columns(file)
                except ValidationError as error:
                    unreadable = error
                    forget_upload(request, token)
                    token = ""
            data = request.POST.copy()
            data["upload"] = token
            form = CampaignForm(data, request.FILES, columns=columns)
            if form.is_valid():
                if too_large:
                    form.add_error("csv_file", too_large_message())
                elif unreadable is not None:
                    form.add_error("csv_file", unreadable)
                elif not token:
                    form.add_error("csv_file", _("Choose the CSV file of the audience."))
                else:
                    preview = self._preview(request, form, token)
                    # Created only from a file already previewed, never from a fresh upload.
                    if preview is not None and "_create" in request.POST and upload is None:
                        created = self._create(request, form, token)
                        if created is not None:
                            return HttpResponseRedirect(self._after_create(request, created))
                        preview = None
            elif too_large:
                form.add_error("csv_file", too_large_message())
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
            "preview_rejected": with_reasons(preview.rejected) if preview else [],
            "preview_repeated": with_reasons(preview.repeated) if preview else [],
            "template_data": form.template_data,
            "compose_i18n": display.compose_i18n(),
            "rejections_shown": REJECTIONS_SHOWN,
            "upload_limit_mb": f"{upload_limit() / (1024 * 1024):g}",
            "workers_problem": task_framework_problem(),
        }
        return TemplateResponse(request, "django_whatsapp/admin/campaign/add.html", context)

    def _after_create(self, request: HttpRequest, created: Campaign) -> str:
        if self.has_view_permission(request, created):
            return reverse("admin:django_whatsapp_campaign_change", args=[created.pk])
        return reverse("admin:django_whatsapp_campaign_changelist")

    def _preview(
        self, request: HttpRequest, form: CampaignForm, token: str
    ) -> AudiencePreview | None:
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
                    account=data.get("account") or None,
                    **form.content(),
                )
        except ValidationError as error:
            if not hasattr(error, "error_dict"):  # the file cannot be read: it is dropped
                forget_upload(request, token)
            form.show_service_errors(error)
            return None

    def _create(self, request: HttpRequest, form: CampaignForm, token: str) -> Campaign | None:
        data = form.cleaned_data
        launch = data["launch"] or LAUNCH_DRAFT
        if launch != LAUNCH_DRAFT:
            problem = task_framework_problem()
            if problem is not None:
                form.add_error(
                    "launch",
                    _("It cannot be sent here: %(problem)s Create it as a draft for now.")
                    % {"problem": problem},
                )
                return None
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
                    **form.limits(),
                )
        except ValidationError as error:
            if not hasattr(error, "error_dict"):
                forget_upload(request, token)
            form.show_service_errors(error)
            return None
        forget_upload(request, token)
        self.message_user(request, created_message(campaign), flash.SUCCESS)
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
