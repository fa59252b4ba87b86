"""Migrations 0010 to 0012: the numbers stored before normalising are normalised (two spellings of
one person become one contact, the stricter opt-out kept), provider ids and idempotency keys
become unique per account with every row kept, and the contacts opted out get their history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_whatsapp.models import Campaign, ConsentChange, Contact, InboundReport, Message

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("django_whatsapp", "0009_faults")


def migrate(target: tuple[str, str] | None) -> Any:
    """Migrate the app to ``target`` (``None``: the latest); the models as they are there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = [target] if target else executor.loader.graph.leaf_nodes("django_whatsapp")
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps() -> Iterator[Any]:
    """The models as migration 0009 left them; every migration applied again afterwards."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate(None)


def test_two_spellings_of_one_person_become_one_contact_and_the_opt_out_holds(
    old_apps: Any,
) -> None:
    OldContact = old_apps.get_model("django_whatsapp", "Contact")
    OldMessage = old_apps.get_model("django_whatsapp", "Message")
    OldReport = old_apps.get_model("django_whatsapp", "InboundReport")
    now = timezone.now()
    stop = OldMessage.objects.create(
        destination_addr="00380503330100", source_addr="TestCo", text="STOP", direction="inbound"
    )
    report = OldReport.objects.create(method="POST", sender="00380503330100")
    report.messages.add(stop)
    OldContact.objects.create(
        number="380503330100",
        name="Olena",
        last_inbound_at=now - timedelta(hours=3),
    )
    OldContact.objects.create(
        number="00380503330100",
        opted_out_at=now - timedelta(days=2),
        opt_out_reason="keyword: STOP",
        opt_out_message=stop,
        last_inbound_at=now - timedelta(hours=1),
    )
    OldContact.objects.create(number="380671112233", opted_out_at=now - timedelta(days=1))
    OldContact.objects.create(number="12", name="not a number: left as it is")
    OldMessage.objects.create(destination_addr="00380503330100", source_addr="TestCo", text="a")
    OldMessage.objects.create(destination_addr="380503330100", source_addr="TestCo", text="b")

    migrate(None)

    contact = Contact.objects.get(number="380503330100")
    assert contact.name == "Olena"
    assert contact.opted_out_at == now - timedelta(days=2)  # the stricter opt-out wins
    assert contact.opt_out_reason == "keyword: STOP"
    assert contact.opt_out_message_id == stop.pk
    assert contact.last_inbound_at == now - timedelta(hours=1)
    assert sorted(Contact.objects.values_list("number", flat=True)) == [
        "12",
        "380503330100",
        "380671112233",
    ]
    assert set(Message.objects.values_list("destination_addr", flat=True)) == {"380503330100"}
    assert InboundReport.objects.get().sender == "380503330100"
    # 0012: each contact opted out has its opt-out in the history, with what asked for it.
    history = ConsentChange.objects.get(contact=contact)
    assert (history.kind, history.at, history.said) == ("opted_out", contact.opted_out_at, "STOP")
    assert (history.message_id, history.report_id) == (stop.pk, report.pk)
    assert ConsentChange.objects.filter(contact__number="380671112233").count() == 1


def test_a_campaign_with_two_spellings_keeps_one_message_per_recipient(old_apps: Any) -> None:
    OldCampaign = old_apps.get_model("django_whatsapp", "Campaign")
    OldMessage = old_apps.get_model("django_whatsapp", "Message")
    campaign = OldCampaign.objects.create(
        name="sale", message_type=1, text="x", source_addr="TestCo", recipients_count=4
    )
    other = OldCampaign.objects.create(
        name="sent", message_type=1, text="x", source_addr="TestCo", recipients_count=2
    )

    def message(to: str, status: str, owner: Any) -> Any:
        return OldMessage.objects.create(
            destination_addr=to, source_addr="TestCo", text="x", status=status, campaign=owner
        )

    kept = message("380503330100", "queued", campaign)
    unsent = message("00380503330100", "queued", campaign)
    message("380671112233", "queued", campaign)
    message("00380671112233", "draft", campaign)
    first_sent = message("380503330100", "delivered", other)
    second_sent = message("00380503330100", "delivered", other)

    migrate(None)

    assert Message.objects.filter(pk=unsent.pk).count() == 0  # never sent: one is enough
    assert Message.objects.get(pk=kept.pk).destination_addr == "380503330100"
    assert Message.objects.filter(campaign_id=campaign.pk).count() == 2
    assert Campaign.objects.get(pk=campaign.pk).recipients_count == 2
    assert Campaign.objects.get(pk=campaign.pk).duplicates_count == 2
    # A message that went out is kept, outside the campaign.
    sent = Message.objects.get(pk=second_sent.pk)
    assert (sent.destination_addr, sent.campaign_id) == ("380503330100", None)
    assert Message.objects.get(pk=first_sent.pk).campaign_id == other.pk


def test_provider_ids_and_keys_become_unique_per_account_with_every_row_kept(
    old_apps: Any,
) -> None:
    OldMessage = old_apps.get_model("django_whatsapp", "Message")
    for index, account in enumerate(("default", "b")):
        OldMessage.objects.create(
            destination_addr="380503330100",
            source_addr="TestCo",
            text="x",
            account=account,
            provider_message_id=100 + index,
            idempotency_key=f"key-{index}",
        )

    migrate(None)

    assert sorted(Message.objects.values_list("account", "provider_message_id")) == [
        ("b", 101),
        ("default", 100),
    ]
    fields: dict[str, Any] = {"destination_addr": "380503330100", "source_addr": "T", "text": "x"}
    # Another account may now have the same id and key...
    Message.objects.create(account="b", provider_message_id=100, idempotency_key="key-0", **fields)
    # ...one account still may not.
    for clash in ({"provider_message_id": 100}, {"idempotency_key": "key-0"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Message.objects.create(account="default", **clash, **fields)
