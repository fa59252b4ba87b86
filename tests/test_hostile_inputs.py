"""Checked before stored (SPEC 13): everything a caller passes (texts, numbers, senders, keys, tags,
template parameters, metadata, a campaign's name and rows) is refused with a ValidationError
naming the field, never a database error or a RecursionError: NUL, lone surrogates, JSON deeper
than 32 levels or larger than 64 KB. Each limit is tested at its boundary: the limit itself is
accepted, one more refused. Run on SQLite and PostgreSQL (which stores no NUL at all)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from django_whatsapp import optout, services
from django_whatsapp.bulk import RECIPIENT_ROOM
from django_whatsapp.idempotency import MAX_KEY_LENGTH
from django_whatsapp.inputs import MAX_BYTES, MAX_DEPTH, check_input, render_json
from django_whatsapp.metadata import MAX_TAG_LENGTH, MAX_TAGS
from django_whatsapp.models import Campaign, CampaignRejection, Message, Template
from django_whatsapp.testing import MemoryGateway

pytestmark = pytest.mark.django_db

TO = "380501234567"
NUL = "a\x00b"
SURROGATE = "a\ud800b"


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep: ``nested(1) == {"a": 1}``."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def sized(size: int) -> dict[str, str]:
    """Metadata whose JSON (as json.dumps writes it) is exactly ``size`` bytes."""
    return {"blob": "x" * (size - len('{"blob": ""}'))}


def refused(field: str, call: Any, code: str | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    assert list(caught.value.error_dict) == [field]
    if code is not None:
        [error] = caught.value.error_dict[field]
        assert error.code == code or code in " ".join(caught.value.messages)
    return caught.value


def nothing_stored(gateway: MemoryGateway) -> None:
    assert Message.objects.count() == 0
    assert gateway.requests == []


# -- per input class, on the send path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "code"),
    [
        ({"text": NUL}, "text", "null_character"),
        ({"text": SURROGATE}, "text", "surrogate"),
        ({"to": "380\x00501234567"}, "destination_addr", "null_character"),
        ({"to": "380\udc00501234567"}, "destination_addr", "surrogate"),
        ({"source_addr": "Shop\x00"}, "source_addr", "null_character"),
        ({"source_addr": "Sh\ud83dop"}, "source_addr", "surrogate"),
        ({"idempotency_key": "key\x00"}, "idempotency_key", "null_character"),
        ({"idempotency_key": "key\udfff"}, "idempotency_key", "surrogate"),
        ({"tags": ["vip", "x\x00"]}, "tags", None),
        ({"tags": ["x\ud800"]}, "tags", "surrogate"),
        ({"metadata": {"k\x00": 1}}, "metadata", "null_character"),
        ({"metadata": {"k": "v\x00"}}, "metadata", "null_character"),
        ({"metadata": {"k": ["v\ud800"]}}, "metadata", "surrogate"),
        ({"metadata": {"\udbff": 1}}, "metadata", "surrogate"),
        ({"metadata": {1: "a key that is no string"}}, "metadata", "invalid_key"),
        ({"metadata": {"n": float("nan")}}, "metadata", "not_json"),
        ({"metadata": nested(MAX_DEPTH + 1)}, "metadata", "too_deep"),
        ({"metadata": nested(5000)}, "metadata", "too_deep"),  # was a RecursionError
        ({"metadata": sized(MAX_BYTES + 1)}, "metadata", "too_large"),
    ],
)
def test_a_hostile_value_is_refused_naming_its_field(
    whatsapp_gateway: MemoryGateway, kwargs: dict[str, Any], field: str, code: str | None
) -> None:
    call = {"to": TO, "text": "hi", **kwargs}
    refused(field, lambda: services.send_text(call.pop("to"), call.pop("text"), **call), code)
    nothing_stored(whatsapp_gateway)


def test_a_value_that_holds_itself_is_refused(whatsapp_gateway: MemoryGateway) -> None:
    loop: dict[str, Any] = {}
    loop["again"] = loop
    refused("metadata", lambda: services.send_text(TO, "hi", metadata=loop), "too_deep")
    nothing_stored(whatsapp_gateway)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"file_url": "https://x.io/a\x00.jpg"}, "file_url"),
        ({"file_url": "https://x.io/a.jpg", "text": "caption\x00"}, "text"),
    ],
)
def test_an_image_and_its_caption(
    whatsapp_gateway: MemoryGateway, kwargs: dict[str, Any], field: str
) -> None:
    refused(field, lambda: services.send_media(TO, **kwargs))
    nothing_stored(whatsapp_gateway)


def test_template_parameters_header_and_name(
    whatsapp_gateway: MemoryGateway, template: Template
) -> None:
    image = "https://x.io/h.jpg"
    refused("template_params", lambda: services.send_template(TO, template, ["A\x00", "1"], image))
    refused("template_params", lambda: services.send_template(TO, template, ["\ud800", "1"], image))
    refused("header", lambda: services.send_template(TO, template, ["A", "1"], "h\x00.jpg"))
    refused("template", lambda: services.send_template(TO, "order\x00ready", ["A", "1"], image))
    nothing_stored(whatsapp_gateway)


def test_an_operators_reason_and_a_number_to_opt_out() -> None:
    with pytest.raises(ValidationError):
        optout.opt_out(TO, reason="by phone\x00")
    with pytest.raises(ValidationError):
        optout.opt_out("380\x00501234567")
    assert not optout.is_opted_out(TO)


# -- the boundaries: the limit is accepted, one more is refused ----------------------------------


def test_an_idempotency_key_of_exactly_the_longest_length_is_accepted(
    whatsapp_gateway: MemoryGateway,
) -> None:
    longest = "k" * MAX_KEY_LENGTH
    message = services.send_text(TO, "hi", idempotency_key=longest)
    assert Message.objects.get(pk=message.pk).idempotency_key == longest
    assert services.send_text(TO, "hi", idempotency_key=longest).pk == message.pk
    refused("idempotency_key", lambda: services.send_text(TO, "hi", idempotency_key=longest + "k"))
    assert len(whatsapp_gateway.requests) == 1


@pytest.mark.django_db(transaction=True)  # an inline bulk send commits each message
def test_a_bulk_key_leaves_room_for_the_recipient(whatsapp_gateway: MemoryGateway) -> None:
    longest = "b" * (MAX_KEY_LENGTH - RECIPIENT_ROOM)
    result = services.send_bulk([TO, "+49 151 12345678"], text="hi", idempotency_key=longest)
    stored = sorted(m.idempotency_key or "" for m in result.messages)
    assert [len(key) for key in stored] == [len(longest) + 1 + 12, len(longest) + 1 + 13]
    assert max(len(key) for key in stored) <= MAX_KEY_LENGTH
    with pytest.raises(ValidationError) as caught:
        services.send_bulk([TO], text="hi", idempotency_key=longest + "b")
    assert list(caught.value.error_dict) == ["idempotency_key"]
    with pytest.raises(ValidationError):
        services.send_bulk([TO], text="hi", idempotency_key="b\x00")
    assert Message.objects.count() == 2


def test_a_tag_of_exactly_the_longest_length_and_the_most_tags(
    whatsapp_gateway: MemoryGateway,
) -> None:
    tags = ["t" * MAX_TAG_LENGTH] + [f"t{i}" for i in range(MAX_TAGS - 1)]
    message = services.send_text(TO, "hi", tags=tags)
    assert Message.objects.get(pk=message.pk).tags == tags
    refused("tags", lambda: services.send_text(TO, "hi", tags=["t" * (MAX_TAG_LENGTH + 1)]))
    refused("tags", lambda: services.send_text(TO, "hi", tags=[*tags, "one-more"]))


def test_metadata_exactly_32_levels_deep_is_accepted_33_refused(
    whatsapp_gateway: MemoryGateway,
) -> None:
    message = services.send_text(TO, "hi", metadata=nested(MAX_DEPTH))
    assert Message.objects.get(pk=message.pk).metadata == nested(MAX_DEPTH)
    refused("metadata", lambda: services.send_text(TO, "hi", metadata=nested(MAX_DEPTH + 1)))
    with pytest.raises(ValidationError):
        check_input([[[1]]], max_depth=2)
    check_input([[1]], max_depth=2)


def test_metadata_of_exactly_64_kb_is_accepted_one_byte_more_refused(
    whatsapp_gateway: MemoryGateway,
) -> None:
    message = services.send_text(TO, "hi", metadata=sized(MAX_BYTES))
    assert len(Message.objects.get(pk=message.pk).metadata["blob"]) == MAX_BYTES - 12
    refused("metadata", lambda: services.send_text(TO, "hi", metadata=sized(MAX_BYTES + 1)))
    # Bytes, not characters: a Cyrillic letter is two.
    two_bytes = {"blob": "я" * ((MAX_BYTES - 12) // 2)}
    services.send_text(TO, "hi", metadata=two_bytes)
    refused("metadata", lambda: services.send_text(TO, "hi", metadata={"blob": "я" * MAX_BYTES}))


def test_a_text_of_the_longest_length() -> None:
    check_input("x" * MAX_BYTES)
    with pytest.raises(ValidationError):
        check_input("x" * (MAX_BYTES + 1))


# -- campaigns: a bad name is refused, a bad row is a rejected row ---------------------------


def test_a_campaigns_name_and_content_are_checked() -> None:
    with pytest.raises(ValidationError) as caught:
        services.create_campaign("Sale\x00", [TO], text="hi")
    assert list(caught.value.error_dict) == ["name"]
    with pytest.raises(ValidationError) as caught:
        services.create_campaign("Sale", [TO], text="hi\ud800")
    assert list(caught.value.error_dict) == ["text"]
    assert Campaign.objects.count() == 0


def test_a_hostile_row_is_a_rejected_row_kept_escaped(template: Template) -> None:
    campaign = services.create_campaign(
        "Sale",
        [
            (TO, ["A", "1"]),
            ("380\x00671112233", ["C", "3"]),
            ("380631112233", ["A\x00", "1"]),
            ("380671112244", ["B", "2"]),
        ],
        template=template,
        header="https://x.io/h.jpg",
    )
    assert campaign.recipients_count == 2
    values = sorted(CampaignRejection.objects.values_list("value", "reason"))
    assert [value for value, _reason in values] == ["380631112233", "380\\x00671112233"]
    assert "NUL" in values[1][1]


# -- stored before these checks: shown without recursion ------------------------------------


def test_metadata_900_levels_deep_from_older_code_is_shown(admin_client: Any) -> None:
    message = Message.objects.create(destination_addr=TO, source_addr="T", text="x")
    deep = '{"a": ' * 900 + "1" + "}" * 900
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:  # as older code stored it, without the checks
        cursor.execute(
            f"UPDATE {Message._meta.db_table} SET metadata = {cast} WHERE id = %s",  # noqa: S608
            [deep, message.pk],
        )
    page = admin_client.get(reverse("admin:django_whatsapp_message_change", args=[message.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "…" in html
    assert admin_client.get(reverse("admin:django_whatsapp_message_changelist")).status_code == 200


def test_render_json_is_indented_json_and_stops_at_the_depth() -> None:
    import json

    value = {"b": [1, {"c": None}], "a": "я", "e": {}, "f": []}
    assert render_json(value) == json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    assert render_json(nested(3), max_depth=2) == '{\n  "a": {\n    "a": …\n  }\n}'
