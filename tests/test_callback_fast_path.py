"""The callback's fast path (a JSON body read without DRF's request wrapping, a plain report
validated without building a serializer, the message found by precompiled SQL) accepts and
refuses exactly what DRF's ``request.data`` and ``ReportSerializer`` did."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import pytest
from django.db import connection, connections
from django.test import RequestFactory
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework import exceptions, serializers
from rest_framework.request import Request

from django_whatsapp import services, status_rule
from django_whatsapp.fastpaths import by_uuid
from django_whatsapp.models import Message
from django_whatsapp.webhooks.callback import CallbackView, find_message
from django_whatsapp.webhooks.parsing import (
    ReportSerializer,
    _valid_report,
    parse_json_body,
    parse_reports,
)
from tests.examples import examples
from tests.factories import make_message

# -- the body: parse_json_body against DRF's request.data ----------------------------------------

BODIES: list[bytes] = [
    b'{"status": "delivered"}',
    b'{"message_id": 554, "status": 1}',
    b'{"message_id": "554", "status": "read"}',
    b"{}",
    b"[]",
    b"null",
    b"3",
    b'"delivered"',
    b"{",
    b'{"status": NaN}',
    b'{"status": Infinity}',
    b'{"status": 1e999}',
    b"\xef\xbb\xbf" + b'{"status": 1}',  # a UTF-8 byte order mark
    b'{"status": "deli\xffvered"}',  # not UTF-8
    b'{"status": 1}\xe2\x82',  # a truncated UTF-8 sequence at the end
    b'{"status": "\\ud800"}',  # a lone surrogate
    b'{"status": "a\\u0000b"}',
    b"[" * 5000 + b"]" * 5000,  # deep enough to exhaust the stack
    b'{"status": 1, "status": 2}',
    b'{"entry": [{"changes": [{"value": {"statuses": [{"status": "read"}]}}]}]}',
    b"  \n\t ",
    '{"status": "доставлено"}'.encode(),
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "APPLICATION/JSON",
]


def drf_data(body: bytes, content_type: str) -> tuple[str, Any]:
    """What DRF's ``request.data`` gives in the callback view: ``("ok", data)`` or the error."""
    django_request = RequestFactory().generic("POST", "/", body, content_type=content_type)
    view = CallbackView()
    request = Request(
        django_request,
        parsers=view.get_parsers(),
        negotiator=view.get_content_negotiator(),
        parser_context={"view": view},
    )
    try:
        return "ok", request.data
    except exceptions.APIException as error:
        return type(error).__name__, str(error.detail)


def fast_data(body: bytes, content_type: str) -> tuple[str, Any]:
    django_request = RequestFactory().generic("POST", "/", body, content_type=content_type)
    assert django_request.content_type == "application/json"
    try:
        return "ok", parse_json_body(django_request)
    except exceptions.APIException as error:
        return type(error).__name__, str(error.detail)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_json_body_is_read_as_drf_reads_it(body: bytes, content_type: str) -> None:
    fast = fast_data(body, content_type)

    assert fast == drf_data(body, content_type)


def test_the_fast_read_keeps_djangos_upload_limit(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    django_request = RequestFactory().post("/", b'{"status": "delivered"}', "application/json")

    from django.core.exceptions import RequestDataTooBig

    with pytest.raises(RequestDataTooBig):
        parse_json_body(django_request)


# -- the reports: the fast validation against ReportSerializer ------------------------------------

ITEMS: list[Any] = [
    {"status": "delivered"},
    {"status": 1},
    {"status": "1"},
    {"status": "READ"},
    {"status": " read "},
    {"status": "sent"},
    {"status": "queued"},
    {"status": "failed"},
    {"status": 7},
    {"status": 8},
    {"status": -1},
    {"status": 1.0},
    {"status": 1.5},
    {"status": True},
    {"status": None},
    {"status": ""},
    {"status": []},
    {"status": {}},
    {"status": "nonsense"},
    {"status": "d\x00elivered"},
    {},
    {"message_id": 554},
    {"message_id": 554, "status": 1},
    {"message_id": "554", "status": 1},
    {"message_id": " 554 ", "status": 1},
    {"message_id": None, "status": 1},
    {"message_id": 0, "status": 1},
    {"message_id": -3, "status": 1},
    {"message_id": 2**63 - 1, "status": 1},
    {"message_id": 2**63, "status": 1},
    {"message_id": "9" * 20, "status": 1},
    {"message_id": "١٢٣", "status": 1},  # Arabic-Indic digits
    {"message_id": True, "status": 1},
    {"message_id": 5.0, "status": 1},
    {"message_id": "", "status": 1},
    {"message_id": [], "status": 1},
    {"message_id": 554, "status": 1, "extra": {"kept": True}},
    [],
    "delivered",
    1,
    None,
]


def serializer_result(item: Any) -> tuple[str, Any]:
    serializer = ReportSerializer(data=item)
    if serializer.is_valid():
        return "ok", dict(serializer.validated_data)
    return "refused", serializer.errors


@pytest.mark.parametrize("item", ITEMS, ids=range(len(ITEMS)))
def test_a_report_is_validated_as_the_serializer_validates_it(item: Any) -> None:
    fast = _valid_report(item)

    verdict, expected = serializer_result(item)
    if verdict == "ok":
        assert fast == expected
        assert fast is not None
        assert list(fast) == list(expected)
    else:
        assert fast is None  # the serializer then refuses it with its own errors


@pytest.mark.parametrize("item", [item for item in ITEMS if isinstance(item, dict)])
def test_parse_reports_answers_as_the_serializer_did(item: Any) -> None:
    try:
        verdict, result = "ok", parse_reports(item)
    except serializers.ValidationError as error:
        verdict, result = "refused", error.detail

    expected_verdict, expected = serializer_result(item)
    assert verdict == expected_verdict
    if verdict == "ok":
        assert result == [expected]
    else:
        assert result == serializers.ValidationError(expected).detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
report_like = st.fixed_dictionaries(
    {},
    optional={
        "message_id": st.one_of(json_values, st.integers(), st.from_regex(r"\s?\d{1,21}\s?")),
        "status": st.one_of(json_values, st.sampled_from(["delivered", "read", "1", "7", "sent"])),
    },
)


@hypothesis_settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(item=st.one_of(report_like, json_values))
def test_any_report_is_validated_as_the_serializer_validates_it(item: Any) -> None:
    fast = _valid_report(item)

    verdict, expected = serializer_result(item)
    assert fast == (expected if verdict == "ok" else None)


# -- the message: precompiled SQL against the ORM ------------------------------------------------


@pytest.mark.django_db
def test_the_message_is_found_as_the_orm_finds_it(django_assert_num_queries: Any) -> None:
    message = make_message()
    expected = Message.objects.filter(uuid=message.uuid).order_by().first()

    with django_assert_num_queries(1):
        found = find_message(message.uuid)

    assert found is not None
    assert expected is not None
    for field in Message._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found._state.adding is False
    assert found._state.db == expected._state.db


@pytest.mark.django_db
def test_no_message_is_none() -> None:
    make_message()

    assert find_message(uuid.uuid4()) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("use_tz", "zone", "database_zone"),
    [
        (True, "UTC", None),
        (True, "UTC", "Asia/Kolkata"),  # DATABASES' TIME_ZONE: aware, in that zone
        (False, "Asia/Kolkata", None),
    ],
)
def test_the_one_statement_loads_the_message_as_the_orm_does(
    settings: Any, use_tz: bool, zone: str, database_zone: str | None
) -> None:
    """On PostgreSQL the callback's one statement reports the message's timestamps as
    microseconds since the epoch; the message built from them equals the ORM's, to the
    microsecond and in the same time zone (aware with ``USE_TZ``, naive local time without)."""
    if connection.vendor != "postgresql":
        pytest.skip("the one statement is PostgreSQL's; elsewhere find_message is tested above")
    settings.USE_TZ, settings.TIME_ZONE = use_tz, zone
    message = make_message()
    moment = datetime.datetime(2026, 3, 29, 1, 30, 15, 123457, tzinfo=datetime.UTC)
    Message.objects.filter(pk=message.pk).update(
        created_at=moment if use_tz else moment.replace(tzinfo=None),
        submitted_at=None,
    )
    alias = "default"
    database = connections[alias]
    kept = database.settings_dict.get("TIME_ZONE")

    def zone_of_the_connection(name: str | None) -> None:
        database.settings_dict["TIME_ZONE"] = name
        for cached in ("timezone", "timezone_name"):
            database.__dict__.pop(cached, None)
        database.ensure_timezone()

    zone_of_the_connection(database_zone)
    try:
        lookup = by_uuid.lookup_for(alias, database)

        def receive() -> tuple[Message, Any]:
            found = services.receive_report_by_uuid(
                lookup.columns,
                lambda row: lookup.load_counted(alias, database, row),
                message.uuid,
                "delivered",
                source="callback",
                payload={"status": "delivered"},
                provider_message_id=None,
                alias=alias,
            )
            assert found is not None
            return found

        assert receive()[1] is not None  # applied: status_changed_at is set by the database
        expected = Message.objects.get(pk=message.pk)
        found, event = receive()  # a duplicate: the message exactly as the statement read it
    finally:
        zone_of_the_connection(kept)

    assert event is None
    for field in Message._meta.concrete_fields:
        value, wanted = getattr(found, field.attname), getattr(expected, field.attname)
        assert value == wanted, field.name
        if isinstance(wanted, datetime.datetime):
            assert value.tzinfo == wanted.tzinfo, field.name
            assert str(value) == str(wanted), field.name
    assert expected.submitted_at is None
    assert expected.status_changed_at is not None
    if database_zone:
        assert str(expected.created_at) == "2026-03-29 07:00:15.123457+05:30"


def test_each_kind_of_report_is_one_statement_text_with_three_parameters() -> None:
    """What lets PostgreSQL run the callback's statement without planning it again: the
    report's status, source and the statuses it may raise the message from are in the text,
    from the module's own constants; only the UUID, the payload and the time (and a named
    provider id) are parameters."""

    def text(status: str, source: str, names_id: bool) -> str:
        return by_uuid.call_text(
            "{row}.id",
            status,
            status_rule.PROVIDER_CODES.get(status),
            source,
            tuple(status_rule.lower_ranked(status)),
            names_id,
        )

    delivered = text("delivered", "callback", False)
    assert set(re.findall(r"%\((\w+)\)s", delivered)) == {"uuid", "payload", "now"}
    assert "SELECT (r.message).id, r.event_id" in delivered
    assert "'delivered', 1, 'callback', %(payload)s, %(now)s," in delivered
    lower = ", ".join(f"'{s}'" for s in status_rule.lower_ranked("delivered"))
    assert f"ARRAY[{lower}]::text[], NULL" in delivered
    named = text("delivered", "callback", True)
    assert set(re.findall(r"%\((\w+)\)s", named)) == {
        "uuid",
        "payload",
        "now",
        "provider_message_id",
    }
    # A status nothing ranks below raises nothing.
    assert "ARRAY[]::text[]" in text("draft", "poll", False)
    with pytest.raises(ValueError, match="not a status or source name"):
        by_uuid.sql_literal("sent'; DROP TABLE x; --")
