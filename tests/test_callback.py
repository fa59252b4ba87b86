"""The status callback (SPEC section 8), driven through Django's test client over the real URLconf.

Messages are created directly; every callback is posted to the URL the send would have carried
(``signing.callback_url``), so the signature, routing, middleware, parsing and the services all run.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import signals
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.signing import callback_url, sign
from tests.examples import examples

pytestmark = pytest.mark.django_db

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=BoUnDaRy"
CALLBACKS = Path(__file__).parent / "callbacks"
Status = Message.Status

# -- the callback factory ------------------------------------------------------------------------


def make_message(status: str = Status.ACCEPTED, provider_message_id: int | None = 554) -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380631234567",
        text="Your order is ready",
        status=status,
        provider_message_id=provider_message_id,
    )


def callback_path(message: Message | Any, *, secret: str | None = None) -> str:
    """The path of the message's signed callback URL: the one its send carried, or one signed
    with ``secret``."""
    message_uuid = getattr(message, "uuid", message)
    if secret is None:
        url = callback_url(message_uuid)
        assert url is not None
        return urlsplit(url).path
    return reverse(
        "django_whatsapp:callback",
        kwargs={"message_uuid": message_uuid, "signature": sign(message_uuid, secret)},
    )


def post_callback(
    client: Client,
    message: Message | Any,
    body: Any,
    content_type: str = JSON,
    *,
    path: str | None = None,
    **extra: Any,
) -> Any:
    """POST ``body`` to the message's signed callback URL. A dict or list is encoded as JSON, as
    URL-encoded fields or as multipart fields, as ``content_type`` says; bytes go as they are."""
    path = path or callback_path(message)
    if isinstance(body, bytes | str):
        data: Any = body
    elif content_type == JSON:
        data = json.dumps(body)
    elif content_type == FORM:
        data = urlencode(body, doseq=True)
    else:
        return client.post(path, body, **extra)  # the test client's own multipart encoding
    return client.post(path, data, content_type=content_type, **extra)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((CALLBACKS / name).read_text())


def assert_refused(response: Any, status: int) -> dict[str, Any]:
    """An error answer: the status, a JSON body, and a reason in it."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["ok"] is False
    assert isinstance(answer["error"], str)
    assert answer["error"]
    return answer


def assert_untouched(message: Message, status: str, provider_message_id: int | None) -> None:
    fresh = Message.objects.get(pk=message.pk)
    assert fresh.status == status
    assert fresh.provider_message_id == provider_message_id
    assert fresh.status_changed_at == message.status_changed_at
    assert StatusEvent.objects.filter(message=message).count() == 0


@pytest.fixture
def changes() -> Iterator[list[dict[str, Any]]]:
    """Every ``status_changed`` signal sent while the test runs."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append({"sender": sender, **kwargs})

    signals.status_changed.connect(receiver, dispatch_uid="test_callback.changes")
    yield calls
    signals.status_changed.disconnect(dispatch_uid="test_callback.changes")


# -- a report applied --------------------------------------------------------------------------


def test_report_is_applied_and_kept_raw(client: Client) -> None:
    message = make_message()
    body = recorded("plain_code.json")

    response = post_callback(client, message, body)

    assert response.status_code == 200
    assert response.json() == {"ok": True, "status": "delivered", "applied": 1, "duplicates": 0}
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.status_changed_at is not None
    event = message.events.get()
    assert event.source == StatusEvent.Source.CALLBACK
    assert event.status == Status.DELIVERED
    assert event.provider_status == 1
    assert event.payload == body


def test_a_callback_is_one_statement_on_postgresql(client: Client, changes: list) -> None:
    """The message's lookup and the report's application are one statement on PostgreSQL: an
    applied report, a duplicate and an unknown message each cost the request one query."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: elsewhere the lookup and the transaction are statements")
    message = make_message()
    for expected in ({"applied": 1, "duplicates": 0}, {"applied": 0, "duplicates": 1}):
        with CaptureQueriesContext(connection) as queries:
            response = post_callback(client, message, {"message_id": 554, "status": 1})
        assert response.json() == {"ok": True, "status": "delivered", **expected}
        assert len(queries) == 1, [q["sql"][:60] for q in queries.captured_queries]
    assert [(c["old_status"], c["new_status"]) for c in changes] == [("accepted", "delivered")]
    stranger = Message(uuid=uuid.uuid4())
    with CaptureQueriesContext(connection) as queries:
        assert post_callback(client, stranger, {"status": 1}).status_code == 404
    assert len(queries) == 1


def test_recorded_plain_body_with_string_id_and_status_name(client: Client) -> None:
    message = make_message()

    response = post_callback(client, message, recorded("plain_name.json"))

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.events.get().payload == {"message_id": "554", "status": "delivered"}


def test_report_without_message_id_is_enough(client: Client) -> None:
    """The signed URL already names the message."""
    message = make_message()

    response = post_callback(client, message, {"status": "sent"})

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert message.provider_message_id == 554


def test_duplicate_report_is_answered_but_not_recorded_twice(client: Client, changes: list) -> None:
    message = make_message()
    body = {"message_id": 554, "status": 1}

    first = post_callback(client, message, body)
    second = post_callback(client, message, body)

    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json() == {"ok": True, "status": "delivered", "applied": 0, "duplicates": 1}
    assert message.events.count() == 1
    assert len(changes) == 1


def test_same_status_by_code_and_by_name_is_one_report(client: Client) -> None:
    message = make_message()

    post_callback(client, message, {"message_id": 554, "status": 7})
    response = post_callback(client, message, {"message_id": 554, "status": "read"})

    assert response.status_code == 200
    assert response.json()["duplicates"] == 1
    assert message.events.count() == 1


def test_older_report_does_not_regress_but_is_kept(client: Client, changes: list) -> None:
    message = make_message()

    seen = post_callback(client, message, {"message_id": 554, "status": "seen"})
    late = post_callback(client, message, {"message_id": 554, "status": "delivered"})

    assert seen.status_code == 200
    assert late.status_code == 200
    assert late.json() == {"ok": True, "status": "seen", "applied": 1, "duplicates": 0}
    message.refresh_from_db()
    assert message.status == Status.SEEN
    assert sorted(message.events.values_list("status", flat=True)) == ["delivered", "seen"]
    assert [(c["old_status"], c["new_status"]) for c in changes] == [("accepted", "seen")]


def test_late_delivered_never_undoes_failed(client: Client) -> None:
    message = make_message()

    post_callback(client, message, {"message_id": 554, "status": 4})
    post_callback(client, message, {"message_id": 554, "status": 1})

    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.events.count() == 2


def test_status_changed_is_sent_once_per_real_change(client: Client, changes: list) -> None:
    message = make_message()

    for status in ("sent", "sent", "delivered", "pending", "delivered", "read", "seen", 1):
        assert (
            post_callback(client, message, {"message_id": 554, "status": status}).status_code == 200
        )

    assert [(c["old_status"], c["new_status"]) for c in changes] == [
        ("accepted", "sent"),
        ("sent", "delivered"),
        ("delivered", "seen"),
    ]
    assert all(c["sender"] is Message for c in changes)
    assert all(c["message"].pk == message.pk for c in changes)
    assert [c["event"].status for c in changes] == ["sent", "delivered", "seen"]
    assert all(c["event"].source == StatusEvent.Source.CALLBACK for c in changes)
    # sent, delivered, pending (older, kept), seen: the duplicates are not events
    assert message.events.count() == 4


# -- a message whose send answer was lost ------------------------------------------------------


@pytest.mark.parametrize("status", [Status.UNKNOWN, Status.SENDING])
def test_message_without_provider_id_adopts_the_reported_one(client: Client, status: str) -> None:
    message = make_message(status=status, provider_message_id=None)

    response = post_callback(client, message, {"message_id": 9001, "status": 0})

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.provider_message_id == 9001
    assert message.status == Status.SENT
    assert message.events.get().source == StatusEvent.Source.CALLBACK


def test_adopted_id_then_binds_later_reports(client: Client) -> None:
    message = make_message(status=Status.UNKNOWN, provider_message_id=None)
    post_callback(client, message, {"message_id": 9001, "status": 0})

    response = post_callback(client, message, {"message_id": 9002, "status": 1})

    assert_refused(response, 400)
    message.refresh_from_db()
    assert message.provider_message_id == 9001
    assert message.status == Status.SENT


def test_report_naming_another_provider_id_is_refused(client: Client) -> None:
    message = make_message(provider_message_id=554)

    response = post_callback(client, message, {"message_id": 555, "status": 1})

    assert_refused(response, 400)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_report_adopting_an_id_another_message_has_is_refused(client: Client) -> None:
    make_message(provider_message_id=777)
    message = make_message(status=Status.UNKNOWN, provider_message_id=None)

    response = post_callback(client, message, {"message_id": 777, "status": 1})

    assert_refused(response, 400)
    assert_untouched(message, Status.UNKNOWN, None)


# -- malformed reports -------------------------------------------------------------------------

MALFORMED: list[Any] = [
    pytest.param(b"{", id="truncated-json"),
    pytest.param(b"not json at all", id="not-json"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b"null", id="null"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b'"delivered"', id="bare-string"),
    pytest.param(b"42", id="bare-number"),
    pytest.param(b"[]", id="empty-array"),
    pytest.param(b'[{"message_id": 554, "status": 1}]', id="top-level-array"),
    pytest.param(b'{"message_id": 554, "status": NaN}', id="nan"),
    pytest.param(b'{"message_id": 554, "status": 1, "x": 1e400}', id="infinite-float"),
    pytest.param(b'{"message_id": 554, "status": 1, "x": "a\\u0000b"}', id="nul-in-string"),
    pytest.param(b'{"message_id": 554, "status": 1, "\\ud800": 1}', id="lone-surrogate-key"),
    pytest.param(b'{"message_id": 554, "status": 1, "x": "\\udfff"}', id="lone-surrogate"),
    pytest.param(b'{"message_id": 554, "status": "\xff"}', id="invalid-utf8"),
    pytest.param(b"[" * 50_000 + b"]" * 10, id="deep-array"),
    pytest.param(
        b'{"message_id": 554, "status": 1, "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        id="deep-extra-field",
    ),
    pytest.param(
        b'{"message_id": 554, "status": 1, "x": ' + b'{"a":' * 100 + b"1" + b"}" * 101,
        id="nested-too-deep-to-keep",
    ),
    pytest.param({"message_id": 554}, id="no-status"),
    pytest.param({"message_id": "abc", "status": 1}, id="id-abc"),
    pytest.param({"message_id": True, "status": 1}, id="id-true"),
    pytest.param({"message_id": 1.5, "status": 1}, id="id-float"),
    pytest.param({"message_id": 554.0, "status": 1}, id="id-whole-float"),
    pytest.param({"message_id": [], "status": 1}, id="id-list"),
    pytest.param({"message_id": {}, "status": 1}, id="id-object"),
    pytest.param({"message_id": 0, "status": 1}, id="id-zero"),
    pytest.param({"message_id": -554, "status": 1}, id="id-negative"),
    pytest.param({"message_id": "-554", "status": 1}, id="id-negative-string"),
    pytest.param({"message_id": 2**63, "status": 1}, id="id-too-big"),
    pytest.param({"message_id": "9" * 40, "status": 1}, id="id-huge-string"),
    pytest.param({"message_id": "\u0665\u0665\u0664", "status": 1}, id="id-arabic-digits"),
    pytest.param({"message_id": 554, "status": []}, id="status-list"),
    pytest.param({"message_id": 554, "status": {}}, id="status-object"),
    pytest.param({"message_id": 554, "status": None}, id="status-null"),
    pytest.param({"message_id": 554, "status": True}, id="status-true"),
    pytest.param({"message_id": 554, "status": 1.0}, id="status-float"),
    pytest.param({"message_id": 554, "status": 8}, id="status-8"),
    pytest.param({"message_id": 554, "status": 9}, id="status-9"),
    pytest.param({"message_id": 554, "status": -1}, id="status-minus-1"),
    pytest.param({"message_id": 554, "status": "9"}, id="status-9-string"),
    pytest.param({"message_id": 554, "status": "\u00b2"}, id="status-superscript-two"),
    pytest.param({"message_id": 554, "status": ""}, id="status-empty"),
    pytest.param({"message_id": 554, "status": "bogus"}, id="status-bogus"),
    pytest.param({"message_id": 554, "status": "accepted"}, id="status-accepted"),
    pytest.param({"message_id": 554, "status": "not_sent"}, id="status-not-sent"),
    pytest.param({"message_id": 554, "status": "unknown"}, id="status-unknown"),
    pytest.param({"message_id": 554, "status": "queued"}, id="status-queued"),
    pytest.param({"statuses": []}, id="meta-no-statuses"),
    pytest.param({"statuses": [{"id": "wamid.X"}]}, id="meta-no-status"),
    pytest.param({"statuses": [{"status": "delivered"}, {"status": "bogus"}]}, id="meta-one-bad"),
    pytest.param({"statuses": ["delivered"]}, id="meta-string-item"),
    pytest.param({"statuses": [{"status": "sent"}] * 21}, id="meta-too-many"),
    pytest.param({"entry": []}, id="meta-empty-entry"),
    pytest.param({"entry": [{"changes": [{"value": {"messages": [{}]}}]}]}, id="meta-no-statuses"),
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_report_is_refused_with_a_reason_and_nothing_written(
    client: Client, body: Any, changes: list
) -> None:
    message = make_message()

    response = post_callback(client, message, body)

    assert_refused(response, 400)
    assert_untouched(message, Status.ACCEPTED, 554)
    assert changes == []


def test_field_errors_name_the_field(client: Client) -> None:
    message = make_message()

    answer = assert_refused(post_callback(client, message, {"message_id": "abc", "status": 9}), 400)

    assert set(answer["fields"]) == {"message_id", "status"}


def test_malformed_form_report_is_refused(client: Client) -> None:
    message = make_message()

    response = post_callback(client, message, {"message_id": "554", "status": "bogus"}, FORM)

    assert_refused(response, 400)
    assert_untouched(message, Status.ACCEPTED, 554)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/octet-stream", "application/" + "x" * 300],
)
def test_unsupported_content_type_is_refused(client: Client, content_type: str) -> None:
    message = make_message()

    response = post_callback(client, message, b'{"message_id": 554, "status": 1}', content_type)

    assert_refused(response, 415)
    assert_untouched(message, Status.ACCEPTED, 554)


@pytest.mark.parametrize("charset", ["zlib", "base64", "rot13", "no-such-charset", "utf-16"])
def test_odd_charsets_never_break_the_view(client: Client, charset: str) -> None:
    message = make_message()
    path = callback_path(message)

    for content_type in (JSON, FORM, MULTIPART):
        response = client.post(
            path,
            b"message_id=554&status=1",
            content_type=JSON,
            CONTENT_TYPE=f"{content_type}; charset={charset}",
        )
        assert response.status_code < 500
        assert response["Content-Type"].startswith("application/json")


def test_too_many_form_fields_is_refused(client: Client) -> None:
    message = make_message()
    body = "message_id=554&status=1&" + "&".join(f"f{i}=x" for i in range(1_500))

    assert_refused(post_callback(client, message, body, FORM), 400)
    assert_refused(client.get(f"{callback_path(message)}?{body}"), 400)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_broken_multipart_is_refused(client: Client) -> None:
    message = make_message()

    response = post_callback(client, message, b"--BoUnDaRy\r\ngarbage", MULTIPART)

    assert_refused(response, 400)
    assert_untouched(message, Status.ACCEPTED, 554)


# -- size --------------------------------------------------------------------------------------


def test_body_over_the_limit_is_refused_before_parsing(client: Client, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 100}
    message = make_message()

    # Malformed JSON: a 400 would mean it was parsed.
    oversized = post_callback(client, message, b"{" + b" " * 100)
    at_limit = post_callback(
        client, message, json.dumps({"message_id": 554, "status": 1}).ljust(100)
    )

    answer = assert_refused(oversized, 413)
    assert "100" in answer["error"]
    assert at_limit.status_code == 200


def test_default_limit_refuses_a_large_valid_report(client: Client) -> None:
    message = make_message()
    body = {"message_id": 554, "status": 1, "padding": "x" * (64 * 1024)}

    assert_refused(post_callback(client, message, body), 413)
    assert_refused(post_callback(client, message, body, FORM), 413)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_djangos_own_upload_limit_is_a_413_too(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 40
    message = make_message()
    body = {"message_id": 554, "status": 1, "padding": "x" * 40}

    assert_refused(post_callback(client, message, body), 413)
    assert_refused(post_callback(client, message, body, FORM), 413)
    assert_untouched(message, Status.ACCEPTED, 554)


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_bad_content_length_is_refused(client: Client, length: str) -> None:
    message = make_message()

    response = post_callback(
        client, message, {"message_id": 554, "status": 1}, CONTENT_LENGTH=length
    )

    assert_refused(response, 400)
    assert_untouched(message, Status.ACCEPTED, 554)


# -- signatures --------------------------------------------------------------------------------


def test_tampered_signature_is_refused(client: Client) -> None:
    message = make_message()
    path = callback_path(message)
    signature = path.rstrip("/").rsplit("/", 1)[1]
    tampered = path.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1"))

    for bad in (tampered, path.replace(signature, signature.upper()), path.replace(signature, "x")):
        assert_refused(post_callback(client, message, {"status": 1}, path=bad), 403)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_signature_for_another_message_is_refused(client: Client) -> None:
    mine = make_message(provider_message_id=554)
    other = make_message(provider_message_id=555)
    stolen = callback_path(other).replace(str(other.uuid), str(mine.uuid))

    response = post_callback(client, mine, {"message_id": 554, "status": 1}, path=stolen)

    assert_refused(response, 403)
    assert_untouched(mine, Status.ACCEPTED, 554)
    assert_untouched(other, Status.ACCEPTED, 555)


def test_signature_by_an_unknown_secret_is_refused(client: Client) -> None:
    message = make_message()
    forged = callback_path(message, secret="guessed-secret")

    assert_refused(post_callback(client, message, {"status": 1}, path=forged), 403)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_unknown_message_with_a_valid_signature_is_not_found(client: Client) -> None:
    message = make_message()
    path = callback_path(message)
    message.delete()

    assert_refused(post_callback(client, message, {"message_id": 554, "status": 1}, path=path), 404)
    assert not StatusEvent.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/whatsapp/callback/not-a-uuid/abcdef/",
        "/whatsapp/callback/12345678-1234-1234-1234-1234567890/abcdef/",
        "/whatsapp/callback/%00/abcdef/",
    ],
)
def test_malformed_uuid_in_the_path_is_not_found(client: Client, path: str) -> None:
    message = make_message()

    assert_refused(post_callback(client, message, {"status": 1}, path=path), 404)
    assert_refused(client.get(path, {"status": 1}), 404)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_missing_signature_is_refused(client: Client) -> None:
    message = make_message()
    unsigned = f"/whatsapp/callback/{message.uuid}/"

    assert_refused(post_callback(client, message, {"status": 1}, path=unsigned), 403)
    assert_refused(client.get(unsigned, {"status": 1}), 403)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_no_secret_configured_refuses_every_callback(client: Client, settings: Any) -> None:
    message = make_message()
    path = callback_path(message)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": None}

    assert_refused(post_callback(client, message, {"status": 1}, path=path), 403)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_secret_rotation_old_urls_still_verify(client: Client, settings: Any) -> None:
    old = make_message(provider_message_id=554)
    old_path = callback_path(old)  # signed while the old secret was the only one
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "CALLBACK_SECRET": ["the-new-secret", django_settings.DJANGO_WHATSAPP["CALLBACK_SECRET"]],
    }
    new = make_message(provider_message_id=555)
    new_path = callback_path(new)

    assert new_path == callback_path(new, secret="the-new-secret")
    assert post_callback(client, old, {"status": 1}, path=old_path).status_code == 200
    assert post_callback(client, new, {"status": 1}, path=new_path).status_code == 200
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": "the-new-secret"}
    assert_refused(post_callback(client, old, {"status": 7}, path=old_path), 403)
    assert Message.objects.get(pk=old.pk).status == Status.DELIVERED


# -- the project around the view ---------------------------------------------------------------


def test_enforced_csrf_does_not_block_callbacks() -> None:
    csrf_client = Client(enforce_csrf_checks=True)
    message = make_message()

    as_json = post_callback(csrf_client, message, {"message_id": 554, "status": 0})
    as_form = post_callback(csrf_client, message, {"message_id": 554, "status": 1}, FORM)
    as_multipart = post_callback(csrf_client, message, {"message_id": 554, "status": 7}, MULTIPART)

    assert [as_json.status_code, as_form.status_code, as_multipart.status_code] == [200, 200, 200]
    assert Message.objects.get(pk=message.pk).status == Status.SEEN


class RecordingBackend(ModelBackend):
    """ModelBackend that remembers every attempt to authenticate."""

    attempts: list[str | None] = []

    def authenticate(self, request: Any, username: str | None = None, **kwargs: Any) -> Any:
        RecordingBackend.attempts.append(username)
        return super().authenticate(request, username=username, **kwargs)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"alice:correct-horse").decode(),
        "Basic " + base64.b64encode(b"alice:wrong").decode(),
        "Basic !!!not-base64!!!",
        "Basic",
        "Token 0123456789abcdef",
    ],
)
def test_authorization_header_logs_nobody_in(
    client: Client, settings: Any, authorization: str
) -> None:
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.RecordingBackend"]
    RecordingBackend.attempts = []
    alice = get_user_model().objects.create_user("alice", password="correct-horse")
    message = make_message()

    response = post_callback(
        client, message, {"message_id": 554, "status": 1}, headers={"Authorization": authorization}
    )

    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated
    assert RecordingBackend.attempts == []
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    alice.refresh_from_db()
    assert alice.last_login is None
    assert Message.objects.get(pk=message.pk).status == Status.DELIVERED


def test_login_required_middleware_lets_anonymous_callbacks_through(client: Client) -> None:
    assert "django.contrib.auth.middleware.LoginRequiredMiddleware" in django_settings.MIDDLEWARE
    message = make_message()
    path = callback_path(message)

    posted = post_callback(client, message, {"message_id": 554, "status": 0})
    fetched = client.get(path, {"message_id": "554", "status": "delivered"})
    refused = client.get(f"/whatsapp/callback/{message.uuid}/", {"status": 7})

    assert posted.status_code == 200
    assert fetched.status_code == 200
    assert_refused(refused, 403)  # not a redirect to the login page
    assert Message.objects.get(pk=message.pk).status == Status.DELIVERED


def test_logged_in_client_is_answered_the_same(client: Client, admin_user: Any) -> None:
    client.force_login(admin_user)
    message = make_message()

    assert post_callback(client, message, {"message_id": 554, "status": 1}).status_code == 200


# -- the ways a report can arrive --------------------------------------------------------------


def test_get_with_query_string(client: Client) -> None:
    message = make_message()

    response = client.get(callback_path(message), {"message_id": "554", "status": "1"})

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.events.get().payload == {"message_id": "554", "status": "1"}


def test_get_without_a_report_is_refused(client: Client) -> None:
    message = make_message()

    assert_refused(client.get(callback_path(message)), 400)
    assert_untouched(message, Status.ACCEPTED, 554)


def test_post_with_the_report_in_the_query_string(client: Client) -> None:
    message = make_message()

    response = client.post(f"{callback_path(message)}?message_id=554&status=seen")

    assert response.status_code == 200
    assert Message.objects.get(pk=message.pk).status == Status.SEEN


@pytest.mark.parametrize(
    "headers",
    [
        {"Accept": "text/html"},
        {"Accept": "application/xml"},
        {"Accept": "text/plain;q=1, */*;q=0"},
        {"Accept": "x" * 9000},
    ],
)
def test_any_accept_header_is_answered_in_json(client: Client, headers: dict[str, str]) -> None:
    message = make_message()

    response = post_callback(client, message, {"message_id": 554, "status": 1}, headers=headers)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert Message.objects.get(pk=message.pk).status == Status.DELIVERED


def test_format_query_parameter_is_just_part_of_the_report(client: Client) -> None:
    message = make_message()

    response = client.get(callback_path(message), {"status": "1", "format": "xml"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert Message.objects.get(pk=message.pk).status == Status.DELIVERED


def test_form_encoded_post(client: Client) -> None:
    message = make_message()

    response = post_callback(client, message, {"message_id": "554", "status": "delivered"}, FORM)

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert message.events.get().payload == {"message_id": "554", "status": "delivered"}


def test_multipart_post(client: Client) -> None:
    message = make_message()

    response = post_callback(client, message, {"message_id": "554", "status": "7"}, MULTIPART)

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Status.SEEN
    assert message.events.get().payload == {"message_id": "554", "status": "7"}


def test_multipart_post_with_a_file_keeps_only_the_fields(client: Client) -> None:
    message = make_message()
    upload = SimpleUploadedFile("report.txt", b"hello", content_type="text/plain")

    response = post_callback(
        client, message, {"message_id": "554", "status": "1", "attachment": upload}, MULTIPART
    )

    assert response.status_code == 200
    assert message.events.get().payload == {"message_id": "554", "status": "1"}


def test_repeated_form_field_keeps_every_value(client: Client) -> None:
    message = make_message()

    response = post_callback(
        client, message, {"message_id": "554", "status": "1", "tag": ["a", "b"]}, FORM
    )

    assert response.status_code == 200
    assert message.events.get().payload == {"message_id": "554", "status": "1", "tag": ["a", "b"]}


#: The provider's status codes, in code order (SPEC section 3).
PROVIDER_NAMES = ["sent", "delivered", "rejected", "error", "failed", "deleted", "pending", "seen"]


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        *[pytest.param(code, name, id=f"code-{code}") for code, name in enumerate(PROVIDER_NAMES)],
        *[
            pytest.param(str(code), name, id=f"code-{code}-string")
            for code, name in enumerate(PROVIDER_NAMES)
        ],
        *[pytest.param(name, name, id=name) for name in PROVIDER_NAMES],
        pytest.param("read", "seen", id="read"),
        pytest.param(" READ ", "seen", id="read-upper-padded"),
        pytest.param("Delivered", "delivered", id="capitalised"),
    ],
)
def test_status_by_code_or_name(client: Client, reported: Any, expected: str) -> None:
    message = make_message()

    response = post_callback(client, message, {"message_id": 554, "status": reported})

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == expected
    event = message.events.get()
    assert event.status == expected
    assert event.payload == {"message_id": 554, "status": reported}


@pytest.mark.parametrize(("code", "name"), list(enumerate(PROVIDER_NAMES)))
def test_status_codes_as_form_fields(client: Client, code: int, name: str) -> None:
    message = make_message()

    response = post_callback(client, message, {"message_id": "554", "status": str(code)}, FORM)

    assert response.status_code == 200
    event = Message.objects.get(pk=message.pk).events.get()
    assert (event.status, event.provider_status) == (name, code)


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        ("meta_statuses.json", "delivered"),
        ("meta_webhook.json", "delivered"),
        ("meta_read.json", "seen"),
    ],
)
def test_meta_shaped_bodies_are_understood(client: Client, recording: str, expected: str) -> None:
    message = make_message()
    body = recorded(recording)

    response = post_callback(client, message, body)

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == expected
    assert message.provider_message_id == 554  # Meta's own "wamid." ids are not ours
    event = message.events.get()
    assert event.source == StatusEvent.Source.CALLBACK
    assert event.payload == body


def test_meta_body_with_several_statuses_applies_each(client: Client, changes: list) -> None:
    message = make_message()
    body = {"statuses": [{"id": "wamid.X", "status": s} for s in ("sent", "read", "delivered")]}

    response = post_callback(client, message, body)

    assert response.json() == {"ok": True, "status": "seen", "applied": 3, "duplicates": 0}
    assert sorted(message.events.values_list("status", flat=True)) == ["delivered", "seen", "sent"]
    assert [c["new_status"] for c in changes] == ["sent", "seen"]


# -- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_refused_in_json(client: Client, method: str) -> None:
    message = make_message()

    response = getattr(client, method)(callback_path(message), '{"status": 1}', content_type=JSON)

    answer = assert_refused(response, 405)
    assert method.upper() in answer["error"]
    assert "POST" in response["Allow"]
    assert_untouched(message, Status.ACCEPTED, 554)


def test_options_changes_nothing(client: Client) -> None:
    message = make_message()

    response = client.options(callback_path(message), '{"status": 1}', content_type=JSON)

    assert response.status_code == 200
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert_untouched(message, Status.ACCEPTED, 554)


# -- nothing the sender controls makes a 500 ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
report_values = (
    json_values
    | st.sampled_from([0, 1, 7, 8, -1, "1", "read", "seen", "bogus", "accepted", "", " 7 ", "x"])
    | st.integers(min_value=-(2**70), max_value=2**70)
)
reports = st.fixed_dictionaries(
    {},
    optional={
        "message_id": st.sampled_from([554, "554", 555, 9001]) | report_values,
        "status": report_values,
        "statuses": st.lists(
            st.fixed_dictionaries({}, optional={"id": st.text(max_size=8), "status": report_values})
            | json_values,
            max_size=3,
        ),
        "entry": json_values,
        "extra": json_values,
    },
)
content_types = st.sampled_from(
    [
        JSON,
        FORM,
        MULTIPART,
        "text/plain",
        "",
        "application/json; charset=latin-1",
        "multipart/form-data",
    ]
)
bodies = (
    st.tuples(reports.map(lambda r: json.dumps(r).encode()), st.just(JSON))
    | st.tuples(json_values.map(lambda v: json.dumps(v).encode()), st.just(JSON))
    | st.tuples(st.binary(max_size=200), content_types)
    | st.tuples(
        st.dictionaries(st.sampled_from(["message_id", "status", "x"]), st.text(max_size=8)).map(
            lambda d: urlencode(d).encode()
        ),
        st.just(FORM),
    )
    | st.tuples(st.integers(1, 20_000).map(lambda n: b"[" * n + b"{" * n), st.just(JSON))
)
accepts = st.sampled_from(["*/*", "text/html", "application/xml", "application/json"]) | st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40
)


@pytest.fixture
def fuzz_path() -> str:
    """A message still waiting for its provider id, beside one that has the id 555."""
    make_message(provider_message_id=555)
    return callback_path(make_message(status=Status.UNKNOWN, provider_message_id=None))


@hypothesis_settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=bodies, query=st.text(max_size=30), accept=accepts)
def test_nothing_the_sender_sends_makes_a_server_error(
    client: Client, fuzz_path: str, body: tuple[bytes, str], query: str, accept: str
) -> None:
    data, content_type = body

    posted = client.post(
        fuzz_path, data, content_type=JSON, CONTENT_TYPE=content_type, HTTP_ACCEPT=accept
    )
    fetched = client.get(fuzz_path, {"status": query, "message_id": query}, HTTP_ACCEPT=accept)

    for response in (posted, fetched):
        assert response.status_code < 500
        assert response["Content-Type"].startswith("application/json")
        assert isinstance(response.json()["ok"], bool)
