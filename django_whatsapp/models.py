"""Templates, messages and their status events, and the status ranks; the campaign models
live in :mod:`django_whatsapp.campaigns.models` and are imported here."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .campaigns.models import Campaign, CampaignChunk, CampaignRejection
from .metadata import validate_metadata, validate_tags

__all__ = [
    "FINAL_STATUSES",
    "PLACEHOLDER_RE",
    "Campaign",
    "CampaignChunk",
    "CampaignRejection",
    "ConsentChange",
    "Contact",
    "Conversation",
    "InboundReport",
    "Message",
    "StatusEvent",
    "Template",
]

PLACEHOLDER_RE = re.compile(r"\{\{\s*(\d+)\s*\}\}")
#: Placeholders are numbered ``{{1}}`` to ``{{MAX_PLACEHOLDERS}}``, consecutively from 1, as
#: WhatsApp numbers a template's variables. A number outside that range is not a placeholder:
#: it is refused when the template is saved, and a body stored before that rule is shown with
#: it left as text (so no page's cost depends on how large a number a body holds).
MAX_PLACEHOLDERS = 100
#: WhatsApp's limit on a template body's length.
MAX_TEMPLATE_BODY = 1024


def placeholder_number(digits: str) -> int | None:
    """The number of a placeholder whose digits are ``digits``, or ``None`` when it is not
    between 1 and ``MAX_PLACEHOLDERS`` (a long digit string is never converted)."""
    if len(digits) > len(str(MAX_PLACEHOLDERS)):
        stripped = digits.lstrip("0")
        if len(stripped) > len(str(MAX_PLACEHOLDERS)):
            return None
        digits = stripped or "0"
    number = int(digits)
    return number if 1 <= number <= MAX_PLACEHOLDERS else None


def _shown(digits: str) -> str:
    return digits if len(digits) <= 12 else f"{digits[:12]}..."


def validate_template_body(body: str) -> None:
    """Refuse a template body that WhatsApp would not register: longer than
    ``MAX_TEMPLATE_BODY`` characters, a placeholder numbered outside ``1..MAX_PLACEHOLDERS``,
    or placeholders not numbered consecutively from ``{{1}}``. Raises ``ValidationError``."""
    numbers: set[int] = set()
    for match in PLACEHOLDER_RE.finditer(body):
        number = placeholder_number(match.group(1))
        if number is None:
            raise ValidationError(
                _(
                    "{{%(number)s}} is not a placeholder WhatsApp accepts: placeholders are "
                    "numbered {{1}} to {{%(max)d}}."
                ),
                code="placeholder_range",
                params={"number": _shown(match.group(1)), "max": MAX_PLACEHOLDERS},
            )
        numbers.add(number)
    missing = next((n for n in range(1, len(numbers) + 1) if n not in numbers), None)
    if missing is not None:
        raise ValidationError(
            _(
                "{{%(missing)d}} is missing: placeholders are numbered consecutively from {{1}} "
                "(this body uses %(used)s)."
            ),
            code="placeholder_gap",
            params={"missing": missing, "used": ", ".join(f"{{{{{n}}}}}" for n in sorted(numbers))},
        )
    if len(body) > MAX_TEMPLATE_BODY:
        raise ValidationError(
            _("A template body has at most %(max)d characters (this one has %(length)d)."),
            code="too_long",
            params={"max": MAX_TEMPLATE_BODY, "length": len(body)},
        )


class Template(models.Model):
    """A message template registered with WhatsApp (the gateway sends it by name)."""

    class HeaderType(models.TextChoices):
        NONE = "none", _("No header")
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")

    # "title": a thing's name (not a person's, which Django's own catalogue has for "name")
    name = models.CharField(pgettext_lazy("title", "name"), max_length=512)
    namespace = models.CharField(_("namespace"), max_length=255)
    language_code = models.CharField(_("language code"), max_length=15, default="en_US")
    language_policy = models.CharField(_("language policy"), max_length=32, default="deterministic")
    body = models.TextField(
        _("body"), help_text=_("The template text, with {{1}}-style placeholders.")
    )
    header_type = models.CharField(
        _("header type"), max_length=8, choices=HeaderType.choices, default=HeaderType.NONE
    )
    components = models.JSONField(
        _("components"),
        null=True,
        blank=True,
        help_text=_(
            "Optional: the template's components as WhatsApp expects them. {{1}}-style "
            "placeholders in their values are filled in. Leave empty to build them from the "
            "body and header type."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        ordering = ["name", "language_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "language_code"], name="django_whatsapp_template_name_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language_code})"

    def clean(self) -> None:
        """Check the body's placeholders (:func:`validate_template_body`)."""
        super().clean()
        try:
            validate_template_body(self.body or "")
        except ValidationError as error:
            raise ValidationError({"body": error}) from None

    @property
    def placeholder_count(self) -> int:
        """How many body parameters the template takes: the highest ``{{n}}`` in its body, at
        most ``MAX_PLACEHOLDERS`` (numbers outside ``1..MAX_PLACEHOLDERS`` are not counted)."""
        numbers = (placeholder_number(n) for n in PLACEHOLDER_RE.findall(self.body or ""))
        return max((n for n in numbers if n is not None), default=0)

    def render(self, params: list[str] | tuple[str, ...]) -> str:
        """The body with its placeholders filled in (missing ones are left as they are)."""

        def fill(match: re.Match[str]) -> str:
            number = placeholder_number(match.group(1))
            index = -1 if number is None else number - 1
            return str(params[index]) if 0 <= index < len(params) else match.group(0)

        return PLACEHOLDER_RE.sub(fill, self.body or "")


class Message(models.Model):
    """One WhatsApp message: sent by us (outbound) and what became of it, or received from a
    customer (inbound).

    An inbound message keeps the customer's number in ``destination_addr`` (so that a
    conversation is every message with one ``destination_addr``) and our number in
    ``source_addr``; its status is ``delivered`` and never changes.
    """

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", _("Sent")
        INBOUND = "inbound", _("Received")

    class MessageType(models.IntegerChoices):
        TEXT = 1, _("Text")
        MEDIA = 2, _("Image")
        TEMPLATE = 4, _("Template")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        UNKNOWN = "unknown", _("Unknown")
        ACCEPTED = "accepted", _("Accepted")
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        SEEN = "seen", _("Seen")
        NOT_SENT = "not_sent", _("Not sent")
        REJECTED = "rejected", _("Rejected")
        ERROR = "error", _("Error")
        FAILED = "failed", _("Failed")
        DELETED = "deleted", _("Deleted")

    uuid = models.UUIDField(_("UUID"), default=uuid.uuid4, unique=True, editable=False)
    source_addr = models.CharField(_("sender"), max_length=20)
    # Indexed by django_whatsapp_thread (destination_addr, created_at), which leads with it.
    destination_addr = models.CharField(_("recipient"), max_length=20)
    message_type = models.PositiveSmallIntegerField(
        _("type"), choices=MessageType.choices, default=MessageType.TEXT
    )
    direction = models.CharField(
        _("direction"),
        max_length=8,
        choices=Direction.choices,
        default=Direction.OUTBOUND,
    )
    inbound_key = models.CharField(
        _("inbound key"),
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text=_("Identifies a received message, so that one delivered twice is stored once."),
    )
    text = models.TextField(_("text"), blank=True, max_length=4096)
    file_url = models.URLField(_("image URL"), blank=True, max_length=2048)
    template = models.ForeignKey(
        Template,
        verbose_name=_("template"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
    )
    template_params = models.JSONField(_("template parameters"), default=dict, blank=True)
    # Unique per account (Meta.constraints): two accounts' gateways may give the same id.
    provider_message_id = models.BigIntegerField(_("provider message id"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    error_name = models.CharField(_("error name"), max_length=255, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    # -- accounts (conf.ACCOUNTS): which WhatsApp account sends, polls and retries this message.
    account = models.CharField(
        _("account"),
        max_length=64,
        default="default",
        help_text=_(
            "The WhatsApp account (DJANGO_WHATSAPP['ACCOUNTS']) this message goes through."
        ),
    )
    # -- the caller's own data: metadata, tags, a link to any object, an idempotency key --------
    metadata = models.JSONField(
        _("metadata"),
        default=dict,
        blank=True,
        validators=[validate_metadata],
        help_text=_("Your own data about the message (a JSON object); never sent to WhatsApp."),
    )
    tags = models.JSONField(
        _("tags"),
        default=list,
        blank=True,
        validators=[validate_tags],
        help_text=_("Short labels to filter messages by; never sent to WhatsApp."),
    )
    target_content_type = models.ForeignKey(
        ContentType,
        verbose_name=_("target type"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # django_whatsapp_target leads with it
    )
    target_object_id = models.CharField(_("target id"), max_length=255, blank=True, default="")
    #: The object the message is about (an order, a booking...): any model instance.
    target = GenericForeignKey("target_content_type", "target_object_id")
    # Unique per account (Meta.constraints): the same key under another account is another send.
    # NULL, not "": a message without a key takes no place in the unique constraint.
    idempotency_key = models.CharField(  # noqa: DJ001
        _("idempotency key"),
        max_length=255,
        null=True,
        blank=True,
        editable=False,
        help_text=_("The caller's key: a second send with the same key sends nothing."),
    )
    campaign = models.ForeignKey(
        "Campaign",
        verbose_name=_("campaign"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    # -- WhatsApp's limits (expiry.py, tier.py, campaigns/hours.py) ----------------------------
    expires_at = models.DateTimeField(
        _("expires"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Not requested by then, the message is not sent at all (never late)."),
    )
    #: Not claimed before this time: the recipient's sending hours open, or the daily limit
    #: frees a place (the error fields say which).
    send_after = models.DateTimeField(_("not before"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-created_at", "-pk"]
        permissions = [("send_message", _("Can send, retry and refresh WhatsApp messages"))]
        indexes = [
            # Plain B-trees: on PostgreSQL, db_index=True on a CharField adds a second index for
            # LIKE (varchar_pattern_ops), which nothing here asks, and every status change
            # would write to it too (see migration 0007).
            models.Index(fields=["status"], name="django_whatsapp_status"),
            models.Index(fields=["direction"], name="django_whatsapp_direction"),
            models.Index(fields=["account"], name="django_whatsapp_account"),
            # A conversation: every message with one contact, in time order.
            models.Index(fields=["destination_addr", "created_at"], name="django_whatsapp_thread"),
            # Every message about one object.
            models.Index(
                fields=["target_content_type", "target_object_id"], name="django_whatsapp_target"
            ),
        ]
        constraints = [
            # One message per recipient and campaign: a number listed twice gets one message.
            models.UniqueConstraint(
                fields=["campaign", "destination_addr"],
                condition=Q(campaign__isnull=False),
                name="django_whatsapp_campaign_recipient",
            ),
            # Provider ids and idempotency keys are each account's own (migration 0011).
            models.UniqueConstraint(
                fields=["account", "provider_message_id"],
                name="django_whatsapp_account_provider_id",
            ),
            models.UniqueConstraint(
                fields=["account", "idempotency_key"], name="django_whatsapp_account_idempotency"
            ),
        ]

    def __str__(self) -> str:
        return _("%(type)s message to %(recipient)s") % {
            "type": self.get_message_type_display(),
            "recipient": f"+{self.destination_addr}",
        }

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_inbound(self) -> bool:
        return self.direction == self.Direction.INBOUND

    @property
    def template_body_params(self) -> list[str]:
        params = (self.template_params or {}).get("body", [])
        return [str(p) for p in params] if isinstance(params, list) else []

    @property
    def template_header(self) -> str | None:
        header = (self.template_params or {}).get("header")
        return str(header) if header not in (None, "") else None


class StatusEvent(models.Model):
    """One status report about a message: the send's result, a callback, a poll, an operator."""

    class Source(models.TextChoices):
        SEND = "send", _("Send")
        CALLBACK = "callback", _("Callback")
        POLL = "poll", _("Poll")
        ADMIN = "admin", _("Admin")

    message = models.ForeignKey(
        Message, verbose_name=_("message"), on_delete=models.CASCADE, related_name="events"
    )
    status = models.CharField(_("status"), max_length=16, choices=Message.Status.choices)
    provider_status = models.PositiveSmallIntegerField(_("provider status"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("status event")
        verbose_name_plural = _("status events")
        ordering = ["-received_at", "-pk"]
        constraints = [
            # The same report from outside (callback or poll) twice is one event. Our own send
            # results and operator actions happen once per real change, each its own event.
            models.UniqueConstraint(
                fields=["message", "status", "source"],
                condition=Q(source__in=["callback", "poll"]),
                name="django_whatsapp_statusevent_unique_report",
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} ({self.source})"


class InboundReport(models.Model):
    """One request that reached the inbound endpoint, stored as it came before it is read, so
    that nothing a customer sends is lost, even when it is not understood."""

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("Received, not read yet")
        UNDERSTOOD = "understood", _("Understood")
        PARTIAL = "partial", _("Partly understood")
        DUPLICATE = "duplicate", _("Duplicate")
        NOT_UNDERSTOOD = "not_understood", _("Not understood")
        REFUSED = "refused", _("Refused")

    method = models.CharField(_("method"), max_length=8)
    content_type = models.CharField(_("content type"), max_length=255, blank=True)
    query_string = models.TextField(_("query string"), blank=True)
    body = models.TextField(_("body"), blank=True)
    body_size = models.PositiveIntegerField(_("body size"), default=0)
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    outcome = models.CharField(
        _("outcome"),
        max_length=16,
        choices=Outcome.choices,
        default=Outcome.RECEIVED,
        db_index=True,
    )
    detail = models.TextField(_("detail"), blank=True)
    sender = models.CharField(_("sender"), max_length=20, blank=True, db_index=True)
    messages = models.ManyToManyField(
        Message, verbose_name=_("messages"), blank=True, related_name="inbound_reports"
    )

    class Meta:
        verbose_name = _("inbound report")
        verbose_name_plural = _("inbound reports")
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return _("%(method)s at %(time)s: %(outcome)s") % {
            "method": self.method,
            "time": self.received_at.isoformat(timespec="seconds") if self.received_at else "-",
            "outcome": self.get_outcome_display(),
        }


class Contact(models.Model):
    """A customer who wrote to us, and when: the 24-hour customer-service window; and whether
    they opted out of our messages (:mod:`django_whatsapp.optout`)."""

    number = models.CharField(_("number"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=255, blank=True)
    last_inbound_at = models.DateTimeField(_("last message received"), null=True, blank=True)
    window_closed_at = models.DateTimeField(
        _("window closed"),
        null=True,
        blank=True,
        help_text=_("When the gateway last refused a free-form message to this contact."),
    )
    # -- opt-out (optout.py): nothing is sent to a contact while ``opted_out_at`` is set.
    opted_out_at = models.DateTimeField(
        _("opted out"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("When the customer asked to receive no more messages; empty when they may."),
    )
    opt_out_reason = models.CharField(_("opt-out reason"), max_length=255, blank=True)
    opt_out_message = models.ForeignKey(
        Message,
        verbose_name=_("opt-out message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The customer's message that opted them out, if one did."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["number"]

    def __str__(self) -> str:
        return f"+{self.number}"


class ConsentChange(models.Model):
    """One opt-out or opt-in of a contact, kept with what asked for it: the customer's message and
    the inbound report it came in (a keyword), or the operator (the admin), or neither (the
    project's own code). Kept when retention deletes that message or report (the link is then
    empty, the words and the time stay); erased with the contact (``whatsapp_purge --contact``).
    """

    class Kind(models.TextChoices):
        OPTED_OUT = "opted_out", _("Opted out")
        OPTED_IN = "opted_in", _("Opted in")

    contact = models.ForeignKey(
        Contact,
        verbose_name=_("contact"),
        on_delete=models.CASCADE,
        related_name="consent_changes",
    )
    kind = models.CharField(_("change"), max_length=16, choices=Kind.choices)
    at = models.DateTimeField(_("when"))
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    said = models.CharField(
        _("what the customer wrote"),
        max_length=255,
        blank=True,
        help_text=_("The customer's words, when a keyword asked for it."),
    )
    message = models.ForeignKey(
        Message,
        verbose_name=_("customer's message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    report = models.ForeignKey(
        InboundReport,
        verbose_name=_("inbound report"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("operator"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("opt-out or opt-in")
        verbose_name_plural = _("opt-out history")
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at.isoformat(timespec='seconds')}"


class AccountState(models.Model):
    """What the app knows of one account's (``ACCOUNTS``) health, shared by every process through
    the database (:mod:`django_whatsapp.faults`).

    *Held*: the gateway refused the account's balance (402, code 3) or key (401/403). Queued and
    campaign sends of the account wait, their campaigns are paused with the reason, until an
    operator resumes (``resume_campaign`` or ``faults.release_account``) after the top-up.

    *Waiting*: the gateway could not be reached, answered server errors after the retries, or the
    rate-limit cache could not be reached. Queued and campaign sends wait with growing pauses
    (``next_try_at``) and go on by themselves when a try succeeds.
    """

    account = models.CharField(_("account"), max_length=64, unique=True)
    held_since = models.DateTimeField(_("held since"), null=True, blank=True)
    held_reason = models.TextField(_("why held"), blank=True)
    waiting_since = models.DateTimeField(_("waiting since"), null=True, blank=True)
    wait_reason = models.TextField(_("why waiting"), blank=True)
    next_try_at = models.DateTimeField(_("next try"), null=True, blank=True)
    #: Tries that failed in a row since ``waiting_since``: the next pause grows with them.
    failures = models.PositiveIntegerField(_("failed tries"), default=0)
    #: Until when one process's try is out (the others wait for its answer).
    probe_until = models.DateTimeField(_("try out until"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("account state")
        verbose_name_plural = _("account states")
        ordering = ["account"]

    def __str__(self) -> str:
        return self.account


class Conversation(Message):
    """The messages with one contact, both directions: the admin's conversations (no table)."""

    class Meta:
        proxy = True
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")


# The statuses that no report moves a message away from: the top five ranks. The ranks and the
# rule that applies a report live in :mod:`django_whatsapp.status_rule`.
_ORDER = Message.Status.values
FINAL_STATUSES: frozenset[str] = frozenset(_ORDER[_ORDER.index(Message.Status.NOT_SENT) :])
