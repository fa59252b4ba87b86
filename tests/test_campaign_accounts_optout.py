"""Campaigns with several accounts and opt-outs: a campaign goes through its own account's
gateway, key, sender and rate budget; a recipient who opted out is skipped at the import and
refused by the engine if they opt out later."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_httpserver import HTTPServer

from django_whatsapp import optout, ratelimit, services, signals
from django_whatsapp.campaigns import engine
from django_whatsapp.campaigns.audience import OPTED_OUT_REASON
from django_whatsapp.conf import get_settings
from django_whatsapp.models import Campaign, CampaignChunk, Message, Template
from tests.conftest import FakeGateway

if find_spec("django.tasks"):  # Django 6.0+
    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    DUMMY = "django_tasks.backends.dummy.DummyBackend"

pytestmark = pytest.mark.django_db(transaction=True)

OUTLET_KEY = "outlet-key-6b1d9c"
Status = Message.Status


@pytest.fixture
def outlet(gateway: FakeGateway, settings: Any) -> Iterator[FakeGateway]:
    """A second account, "outlet", with a gateway of its own; ``gateway`` is the default's."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    fake = FakeGateway(server)
    fake._next_id = 7000
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {
            "outlet": {
                "API_KEY": OUTLET_KEY,
                "BASE_URL": fake.base_url,
                "DEFAULT_SOURCE_ADDR": "Outlet",
                "MAX_RETRIES": 0,
            }
        },
    }
    yield fake
    server.clear()
    server.stop()


def run_chunks(campaign: Campaign) -> None:
    """Send every chunk of a started campaign here, as the workers would."""
    for chunk in CampaignChunk.objects.filter(campaign=campaign).order_by("pk"):
        engine.run_chunk(chunk.pk, concurrency=2)


def requests_of(fake: FakeGateway) -> list[tuple[str, str, int]]:
    return sorted(
        (
            r.headers["Authorization"],
            json.loads(r.get_data())["source_addr"],
            json.loads(r.get_data())["destination_addr"],
        )
        for r in fake.requests
        if r.path.endswith("send-whatsapp")
    )


def test_a_campaign_goes_through_its_own_account(gateway: FakeGateway, outlet: FakeGateway) -> None:
    outlet.accept()
    campaign = services.create_campaign(
        "Outlet sale", ["+380501110001", "+380501110002"], text="Sale", account="outlet"
    )
    assert campaign.account == "outlet"
    assert campaign.source_addr == "Outlet"
    assert set(Message.objects.filter(campaign=campaign).values_list("account", flat=True)) == {
        "outlet"
    }

    services.start_campaign(campaign)
    run_chunks(campaign)

    key = "Basic " + base64.b64encode(OUTLET_KEY.encode()).decode()
    assert requests_of(outlet) == [(key, "Outlet", 380501110001), (key, "Outlet", 380501110002)]
    assert gateway.requests == []  # nothing went to the default account's gateway
    assert set(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        Status.ACCEPTED
    }


def test_an_unknown_account_stores_no_campaign(outlet: FakeGateway) -> None:
    with pytest.raises(ImproperlyConfigured, match="nowhere"):
        services.create_campaign("Lost", ["+380501110001"], text="Hi", account="nowhere")
    assert not Campaign.objects.exists()


def test_the_import_skips_recipients_who_opted_out(outlet: FakeGateway) -> None:
    optout.opt_out("380501110002", reason="asked by phone")

    campaign = services.create_campaign(
        "News", ["+380501110001", "+380501110002", "+380501110003"], text="News"
    )

    stored = sorted(Message.objects.filter(campaign=campaign).values_list("destination_addr"))
    assert stored == [("380501110001",), ("380501110003",)]
    assert (campaign.recipients_count, campaign.rejected_count) == (2, 1)
    (skipped,) = campaign.rejections.all()
    assert (skipped.line, skipped.value, skipped.reason) == (2, "+380501110002", OPTED_OUT_REASON)


def test_a_recipient_who_opts_out_after_the_import_is_refused_without_a_request(
    gateway: FakeGateway, outlet: FakeGateway
) -> None:
    gateway.accept()
    campaign = services.create_campaign("Late", ["+380501110001", "+380501110002"], text="Hi")
    services.start_campaign(campaign)
    optout.opt_out("380501110001", reason="STOP")

    run_chunks(campaign)

    assert [b["destination_addr"] for b in gateway.sent_bodies()] == [380501110002]
    refused = Message.objects.get(campaign=campaign, destination_addr="380501110001")
    assert refused.status == Status.NOT_SENT
    assert refused.error_name == optout.ERROR_NAME
    assert "opted out" in refused.error_message


def test_the_engine_reads_the_opt_outs_in_its_claim(
    gateway: FakeGateway, outlet: FakeGateway
) -> None:
    """The claim's own statement says whose recipients opted out: no query of the opt-outs per
    batch (only a refused recipient's own, for the reason kept on the message)."""
    gateway.accept()
    numbers = ["+380501110001", "+380501110002", "+380501110003", "+380501110004"]
    campaign = services.create_campaign("Late", numbers, text="Hi")
    services.start_campaign(campaign)
    optout.opt_out("380501110001", reason="STOP")
    optout.opt_out("380501110003", reason="STOP")
    optout.opt_in("380501110003")  # opted in again: sent

    with CaptureQueriesContext(connection) as queries:
        run_chunks(campaign)

    sent = sorted(b["destination_addr"] for b in gateway.sent_bodies())
    assert sent == [380501110002, 380501110003, 380501110004]
    refused = Message.objects.get(campaign=campaign, destination_addr="380501110001")
    assert (refused.status, refused.error_name) == (Status.NOT_SENT, optout.ERROR_NAME)
    reads = [q["sql"] for q in queries if "django_whatsapp_contact" in q["sql"]]
    claims = [sql for sql in reads if sql.lstrip().startswith("UPDATE")]
    others = [sql for sql in reads if sql not in claims]
    assert len(claims) >= 2  # two recipients a claim (concurrency=2)
    assert len(others) == 1, others  # the refused recipient's own, for its reason
    assert " IN (" not in others[0]


def test_each_account_has_its_own_rate_budget_and_pause(outlet: FakeGateway, settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "budget": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "campaign-accounts-budget",
        },
    }
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RATE_LIMIT": 50,
        "RATE_LIMIT_CACHE": "budget",
    }
    default_gate = ratelimit.gate_for(get_settings())
    outlet_gate = ratelimit.gate_for(get_settings("outlet"))
    assert isinstance(default_gate, ratelimit.SharedRateLimit)
    assert isinstance(outlet_gate, ratelimit.SharedRateLimit)
    assert default_gate.prefix == ratelimit.PREFIX  # unchanged for a project with one account
    assert outlet_gate.prefix != default_gate.prefix

    # A 429 on the outlet's key pauses the outlet's senders, not the default account's.
    outlet_gate.pause(30, 0)  # the ticket a fresh gate hands its first request
    budget = caches["budget"]
    assert budget.get(outlet_gate.pause_key) is not None
    assert budget.get(default_gate.pause_key) is None


def test_the_command_creates_a_campaign_for_an_account(outlet: FakeGateway, tmp_path: Any) -> None:
    audience = tmp_path / "audience.csv"
    audience.write_text("number\n+380501110001\n", encoding="utf-8")
    out = io.StringIO()
    call_command(
        "whatsapp_campaign", "create", "--name", "Outlet", "--text", "Hi",
        "--csv", str(audience), "--account", "outlet", stdout=out,
    )  # fmt: skip
    campaign = Campaign.objects.get()
    assert campaign.account == "outlet"
    assert Message.objects.get(campaign=campaign).account == "outlet"

    with pytest.raises(CommandError, match=r"Nothing was stored\..*nowhere"):
        call_command(
            "whatsapp_campaign", "create", "--name", "Lost", "--text", "Hi",
            "--csv", str(audience), "--account", "nowhere", stdout=out,
        )  # fmt: skip
    assert Campaign.objects.count() == 1


def test_a_campaigns_metadata_tags_and_target_reach_every_message_and_signal(
    gateway: FakeGateway, outlet: FakeGateway
) -> None:
    gateway.accept()
    target = Template.objects.create(name="spring", language_code="en", body="Hi")
    campaign = services.create_campaign(
        "Spring",
        ["+380501110001", "+380501110002"],
        text="Spring sale",
        metadata={"promo": "SPRING"},
        tags=["spring", "sale"],
        target=target,
    )
    stored = Message.objects.filter(campaign=campaign)
    assert {(m.metadata["promo"], tuple(m.tags), m.target) for m in stored} == {
        ("SPRING", ("spring", "sale"), target)
    }

    seen: list[tuple[dict[str, Any], list[str], Any]] = []

    def sending(sender: Any, message: Message, **kwargs: Any) -> None:
        seen.append((message.metadata, message.tags, message.target))

    signals.message_sending.connect(sending)
    try:
        services.start_campaign(campaign)
        run_chunks(campaign)
    finally:
        signals.message_sending.disconnect(sending)
    assert seen == [({"promo": "SPRING"}, ["spring", "sale"], target)] * 2


def test_bad_metadata_stores_no_campaign(outlet: FakeGateway) -> None:
    with pytest.raises(ValidationError) as raised:
        services.create_campaign("Bad", ["+380501110001"], text="Hi", tags=["ok", ""])
    assert "tags" in raised.value.message_dict
    assert not Campaign.objects.exists()
