"""Edge cases of this round's rooms, each with the answer it must give: the sandbox's target
check per URL class, the metadata validators per bad value, and an inbound message never refused
for an opt-out."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import set_script_prefix

from django_whatsapp import optout
from django_whatsapp.metadata import clean_links, validate_metadata, validate_tags
from django_whatsapp.models import Message
from django_whatsapp.sandbox import CALLBACK, INBOUND, is_project_url
from django_whatsapp.signing import callback_url

ORIGIN = "https://app.example.com"  # CALLBACK_BASE_URL in tests/settings.py


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"{ORIGIN}:99999/whatsapp/callback/x/y/", "a port out of range"),
        ("ftp://app.example.com/whatsapp/callback/x/y/", "not http or https"),
        ("http://[::1/whatsapp/", "not a URL at all"),
        (f"{ORIGIN}/nowhere/at/all/", "a path of no view"),
        (f"{ORIGIN}/admin/", "another view of the project"),
        ("https://elsewhere.example.com/whatsapp/callback/x/y/", "another host"),
        (None, "not a string"),
    ],
)
def test_the_sandbox_refuses_every_url_that_is_not_the_projects_callback(
    url: Any, why: str
) -> None:
    assert is_project_url(url, CALLBACK) is False, why


def test_the_projects_own_callback_is_allowed_only_as_a_callback() -> None:
    url = callback_url(uuid.uuid4())
    assert url is not None
    assert is_project_url(url, CALLBACK) is True
    assert is_project_url(url, INBOUND) is False


def test_a_project_under_a_script_prefix_is_recognised() -> None:
    url = callback_url(uuid.uuid4())
    assert url is not None
    prefixed = url.replace(ORIGIN, f"{ORIGIN}/shop", 1)
    set_script_prefix("/shop/")
    try:
        assert is_project_url(prefixed, CALLBACK) is True
    finally:
        set_script_prefix("/")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("spring", "Tags must be a list of strings."),
        ({"spring": True}, "Tags must be a list of strings."),
    ],
)
def test_tags_that_are_not_a_list_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_tags(value)
    assert raised.value.messages == [message]


def test_metadata_with_keys_that_are_not_strings_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        validate_metadata({1: "one"})
    assert raised.value.messages == ["Metadata keys must be strings."]


@pytest.mark.django_db
def test_a_target_that_is_not_a_model_instance_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        clean_links(target="order-17")  # type: ignore[arg-type]
    assert raised.value.message_dict == {"target": ["The target must be a model instance."]}


@pytest.mark.django_db
def test_an_inbound_message_is_never_refused_for_an_opt_out() -> None:
    optout.opt_out("380501110009", reason="STOP")
    inbound = Message(
        destination_addr="380501110009", direction=Message.Direction.INBOUND, text="STOP"
    )
    outbound = Message(destination_addr="380501110009", text="Hi")
    assert optout.refusal(inbound) is None
    refused = optout.refusal(outbound)
    assert refused is not None
    assert refused.name == optout.ERROR_NAME


@pytest.mark.parametrize("size", ["0", "50001", "-3"])
def test_purge_refuses_a_batch_size_out_of_range(size: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--batch-size"):
        call_command("whatsapp_purge", "--older-than", "1d", "--batch-size", size)


@pytest.mark.parametrize(
    "item", [("380501110001",), ("380501110001", "a", "b"), ("380501110001", "not a list")]
)
def test_a_recipient_item_that_is_not_a_number_or_pair_is_reported(item: Any) -> None:
    from django_whatsapp.campaigns.audience import rows_from_iterable

    (row,) = list(rows_from_iterable([item]))
    assert row.problem == "Give a number or a (number, params) pair."


def test_an_empty_csv_has_no_header() -> None:
    import io

    from django_whatsapp.campaigns.audience import rows_from_csv

    with pytest.raises(ValidationError, match="The CSV file is empty"):
        rows_from_csv(io.StringIO(""))


@pytest.mark.django_db
def test_a_rejected_row_reads_as_its_line_and_reason() -> None:
    from django_whatsapp import services

    campaign = services.create_campaign("Rows", ["+380501110001", "oops"], text="Hi")
    (rejection,) = campaign.rejections.all()
    assert str(rejection) == f"2: {rejection.reason}"
    assert rejection.reason
