"""One number, one person: the numbers stored before normalising are normalised now.

Earlier versions kept a number's digits as they were written, so ``00380503330100`` and
``380503330100`` (and, for a national number, ``0503330100``) could be two contacts, one opted out
and one not. This migration reads every stored number with :func:`django_whatsapp.numbers
.normalize_number`, as a stored number is read (international; with ``DEFAULT_REGION`` only when
it cannot be read internationally, as a national ``0503330100`` cannot), and:

- contacts: the rows of one person become one, the row already written normalised (else the
  oldest) kept: the stricter opt-out wins (opted out when any was, since the earliest opt-out,
  its reason and message kept), the latest message received and window closing are kept, and the
  first name found;
- messages (``destination_addr``) and inbound reports (``sender``) get the normalised digits. Two
  messages of one campaign to two spellings of one number would break the campaign's rule of one
  message per recipient: the later one, when it was not sent yet (draft or queued), is deleted;
  when it was, it is kept as a message outside the campaign; the campaign's counts say so.

A number that cannot be read (not a possible number) is left as it is. Backwards it does nothing:
the numbers stay normalised.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.exceptions import ValidationError
from django.db import migrations
from django.db.models import F


def _reader() -> Any:
    from django_whatsapp.numbers import normalize_number

    def read(stored: str) -> str | None:
        for national in (False, True):
            try:
                return normalize_number(stored, national=national)
            except ValidationError:
                continue
        return None

    return read


def _merge_contacts(apps: Any, read: Any, using: str) -> None:
    Contact = apps.get_model("django_whatsapp", "Contact")
    groups: dict[str, list[Any]] = defaultdict(list)
    for contact in Contact.objects.using(using).order_by("pk").iterator():
        number = read(contact.number)
        if number is not None:
            groups[number].append(contact)
    for number, contacts in groups.items():
        if len(contacts) == 1 and contacts[0].number == number:
            continue
        keeper = next((c for c in contacts if c.number == number), contacts[0])
        others = [c for c in contacts if c.pk != keeper.pk]
        opted_out = sorted(
            (c for c in contacts if c.opted_out_at is not None), key=lambda c: c.opted_out_at
        )
        if opted_out:
            first = opted_out[0]
            keeper.opted_out_at = first.opted_out_at
            keeper.opt_out_reason = first.opt_out_reason
            keeper.opt_out_message_id = first.opt_out_message_id
        received = [c.last_inbound_at for c in contacts if c.last_inbound_at is not None]
        keeper.last_inbound_at = max(received) if received else None
        closed = [c.window_closed_at for c in contacts if c.window_closed_at is not None]
        keeper.window_closed_at = max(closed) if closed else None
        keeper.name = keeper.name or next((c.name for c in contacts if c.name), "")
        Contact.objects.using(using).filter(pk__in=[c.pk for c in others]).delete()
        keeper.number = number
        keeper.save(using=using)


def _normalise_messages(apps: Any, read: Any, using: str) -> None:
    Message = apps.get_model("django_whatsapp", "Message")
    Campaign = apps.get_model("django_whatsapp", "Campaign")
    messages = Message.objects.using(using)
    stored = list(messages.order_by().values_list("destination_addr", flat=True).distinct())
    for value in stored:
        number = read(value)
        if number is None or number == value:
            continue
        # One message per recipient and campaign: a later spelling in a campaign that already
        # has this number gives way.
        clashing = messages.filter(
            destination_addr=value,
            campaign__isnull=False,
            campaign__in=messages.filter(destination_addr=number).values("campaign"),
        )
        for message in clashing:
            if message.status in ("draft", "queued"):
                message.delete()
            else:
                messages.filter(pk=message.pk).update(campaign=None)
            Campaign.objects.using(using).filter(pk=message.campaign_id).update(
                recipients_count=F("recipients_count") - 1,
                duplicates_count=F("duplicates_count") + 1,
            )
        messages.filter(destination_addr=value).update(destination_addr=number)


def _normalise_reports(apps: Any, read: Any, using: str) -> None:
    InboundReport = apps.get_model("django_whatsapp", "InboundReport")
    reports = InboundReport.objects.using(using)
    senders = list(reports.exclude(sender="").order_by().values_list("sender", flat=True).distinct())
    for value in senders:
        number = read(value)
        if number is not None and number != value:
            reports.filter(sender=value).update(sender=number)


def normalise(apps: Any, schema_editor: Any) -> None:
    read = _reader()
    using = schema_editor.connection.alias
    _merge_contacts(apps, read, using)
    _normalise_messages(apps, read, using)
    _normalise_reports(apps, read, using)


class Migration(migrations.Migration):
    dependencies = [("django_whatsapp", "0009_faults")]

    operations = [migrations.RunPython(normalise, migrations.RunPython.noop, elidable=False)]
