"""The campaign tables: the campaign itself, its chunks (the units of work a task sends, with a
lease), and the audience rows that were rejected at import.

Foreign keys name their models as strings, so that this module imports nothing of the package:
``django_whatsapp.models`` imports these classes (Django finds them there).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Campaign(models.Model):
    """One content (text, image or template) to an audience; each recipient is a ``Message``
    pointing here (``campaign.messages``), with its own template parameters."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    name = models.CharField(pgettext_lazy("title", "name"), max_length=255)
    message_type = models.PositiveSmallIntegerField(_("type"), default=1)
    text = models.TextField(_("text"), blank=True, max_length=4096)
    file_url = models.URLField(_("image URL"), blank=True, max_length=2048)
    template = models.ForeignKey(
        "django_whatsapp.Template",
        verbose_name=_("template"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
    )
    params = models.JSONField(
        _("template parameters"),
        default=list,
        blank=True,
        help_text=_("The template's body parameters for recipients given without their own."),
    )
    header = models.CharField(_("template header"), max_length=2048, blank=True)
    source_addr = models.CharField(_("sender"), max_length=20, blank=True)
    #: The WhatsApp account (``ACCOUNTS``) every message of the campaign goes through.
    account = models.CharField(_("account"), max_length=64, default="default")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    #: Rows read from the audience, valid recipients stored, rows rejected, repeated numbers.
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    recipients_count = models.PositiveIntegerField(_("recipients"), default=0)
    rejected_count = models.PositiveIntegerField(_("rejected rows"), default=0)
    duplicates_count = models.PositiveIntegerField(_("duplicate recipients"), default=0)
    #: Why the campaign is paused when the app paused it (the account's balance or key); blank
    #: when it is not paused or an operator paused it.
    pause_reason = models.TextField(_("pause reason"), blank=True)
    #: When the campaign tick task is next due (one chain of ticks per campaign).
    next_tick_at = models.DateTimeField(_("next tick"), null=True, blank=True, editable=False)
    #: Recipients not sent by then are not sent at all (each message carries it too).
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    #: The sending hours, in each recipient's own time (both set, or neither): outside them a
    #: recipient waits for the next opening while the campaign sends the others.
    sending_hours_start = models.TimeField(_("sending hours from"), null=True, blank=True)
    sending_hours_end = models.TimeField(_("sending hours until"), null=True, blank=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-pk"]
        permissions = [("run_campaign", _("Can start, pause, resume and cancel campaigns"))]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.CANCELLED)


class CampaignChunk(models.Model):
    """A range of a campaign's message ids that one task sends: the unit of work and of
    recovery. A worker holds a chunk by its lease (``lease_token`` until ``leased_until``) and
    renews it as it goes; a chunk whose lease ran out (its worker was killed) is taken over by
    the next worker that asks, which settles the messages left in ``sending`` as ``unknown``
    (never sent twice) and sends the rest."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        LEASED = "leased", _("Being sent")
        DONE = "done", _("Done")

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="chunks"
    )
    first_id = models.BigIntegerField(_("first message id"))
    last_id = models.BigIntegerField(_("last message id"))
    size = models.PositiveIntegerField(_("messages"), default=0)
    state = models.CharField(
        _("state"), max_length=8, choices=State.choices, default=State.PENDING, db_index=True
    )
    #: ``<pid>-<random>``: the process that holds the chunk, and its lease.
    lease_token = models.CharField(_("lease"), max_length=32, blank=True)
    leased_until = models.DateTimeField(_("leased until"), null=True, blank=True)
    queued_at = models.DateTimeField(_("handed to the task framework"), null=True, blank=True)
    runs = models.PositiveIntegerField(_("runs"), default=0)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    #: A pending chunk whose remaining recipients all wait (their sending hours, the daily
    #: limit) is handed out again at this time, not before.
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)

    class Meta:
        verbose_name = _("campaign chunk")
        verbose_name_plural = _("campaign chunks")
        ordering = ["campaign", "first_id"]

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.first_id}-{self.last_id} ({self.state})"


class CampaignRejection(models.Model):
    """An audience row that was not stored: where it was (``line``: the CSV line, or the
    1-based position in the iterable), what it held and why. At most
    ``audience.MAX_REJECTIONS_STORED`` are kept per campaign; ``Campaign.rejected_count``
    counts them all."""

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="rejections"
    )
    line = models.PositiveIntegerField(_("line"))
    value = models.CharField(_("value"), max_length=255, blank=True)
    reason = models.TextField(_("reason"))

    class Meta:
        verbose_name = _("rejected row")
        verbose_name_plural = _("rejected rows")
        ordering = ["campaign", "line"]

    def __str__(self) -> str:
        return f"{self.line}: {self.reason}"
