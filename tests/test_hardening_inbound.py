"""Issue #10, items 1, 5 and 9 on the inbound endpoint: every byte sequence is stored raw and
never answered 500 (lone surrogates and NULs are stored as escapes); HEAD changes nothing; the
inbound URL rotates with ``CALLBACK_SECRET`` and the app's log lines never carry a signature or
a secret. Runs on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import inbound
from django_whatsapp.models import Contact, InboundReport, Message

from .conftest import CALLBACK_SECRET
from .examples import examples

pytestmark = pytest.mark.django_db

JSON = "application/json"
CUSTOMER = "380501110003"
Outcome = InboundReport.Outcome


def path_for(secret: str = CALLBACK_SECRET) -> str:
    return reverse("django_whatsapp:inbound", kwargs={"signature": inbound.sign(secret)})


def post_raw(client: Client, body: bytes, path: str | None = None) -> Any:
    return client.post(path or path_for(), body, content_type=JSON)


# -- item 1: lone surrogates and NULs ---------------------------------------------------------


def test_a_lone_surrogate_in_the_text_is_stored_escaped_not_a_500(client: Client) -> None:
    body = b'{"from":"380501110003","text":"a\\ud800b","message_id":"s1"}'
    response = post_raw(client, body)
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == Outcome.UNDERSTOOD
    report = InboundReport.objects.get()
    assert report.outcome == Outcome.UNDERSTOOD
    assert report.body == body.decode()  # the raw report, as it came
    message = Message.objects.get()
    # The surrogate is kept as its six-character escape; the text around it as it came.
    assert message.text == "a\\ud800b"
    assert message.destination_addr == CUSTOMER
    assert list(report.messages.all()) == [message]


def test_a_lone_surrogate_in_a_name_is_stored_escaped(client: Client) -> None:
    body = b'{"from":"380501110003","text":"hi","message_id":"s2","name":"Ann \\udfff"}'
    assert post_raw(client, body).status_code == 200
    assert Contact.objects.get(number=CUSTOMER).name == "Ann \\udfff"
    assert Message.objects.get().text == "hi"


def test_a_lone_surrogate_in_a_meta_profile_name(client: Client) -> None:
    body = {
        "entry": [
            {
                "changes": [
                    {
                        "value": {
                            "contacts": [{"profile": {"name": "\ud83d"}, "wa_id": CUSTOMER}],
                            "messages": [{"from": CUSTOMER, "id": "m1", "text": {"body": "ok"}}],
                        }
                    }
                ]
            }
        ]
    }
    assert post_raw(client, json.dumps(body).encode()).status_code == 200
    assert Contact.objects.get(number=CUSTOMER).name == "\\ud83d"


def test_a_lone_surrogate_in_a_file_url_keeps_the_text_and_says_so(client: Client) -> None:
    body = (
        b'{"from":"380501110003","text":"receipt","message_id":"s3",'
        b'"file_url":"https://cdn.example.com/\\udc00.jpg"}'
    )
    response = post_raw(client, body)
    assert response.status_code == 200
    assert response.json()["outcome"] == Outcome.PARTIAL
    message = Message.objects.get()
    assert (message.text, message.file_url) == ("receipt", "")
    assert "media without a usable http(s) link" in InboundReport.objects.get().detail


def test_a_lone_surrogate_in_our_number_is_stored_escaped(client: Client) -> None:
    body = b'{"from":"380501110003","to":"\\ud800","text":"x","message_id":"s4"}'
    assert post_raw(client, body).status_code == 200
    assert Message.objects.get().source_addr == "\\ud800"


def test_a_lone_surrogate_in_the_sender_is_not_understood_but_stored(client: Client) -> None:
    body = b'{"from":"3805\\ud800","text":"x","message_id":"s5"}'
    response = post_raw(client, body)
    assert response.status_code == 202
    report = InboundReport.objects.get()
    assert report.outcome == Outcome.NOT_UNDERSTOOD
    assert "is not a phone number" in report.detail
    assert not Message.objects.exists()


def test_storable_escapes_only_what_no_database_holds() -> None:
    assert inbound.storable("Привіт 👋") == "Привіт 👋"
    assert inbound.storable("a\ud800b\x00c") == "a\\ud800b\\x00c"
    # Two surrogates side by side in a str are two lone ones (a JSON parser joins real pairs).
    assert inbound.storable("\udfff\ud83d\ude00") == "\\udfff\\ud83d\\ude00"


#: Text a JSON body can carry: any code point, lone surrogates and NUL included.
any_text = st.text(
    st.characters(codec=None, categories=["Cs", "Cc", "L", "N", "P", "Zs", "So"]), max_size=12
)


def test_any_string_in_any_field_is_stored_never_a_500() -> None:
    """Whatever the strings hold, the answer is 200 or 202 and the raw report never stays
    ``received``."""
    client = Client()
    path = path_for()
    ran = 0

    @hypothesis_settings(
        max_examples=examples(150),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(any_text, any_text, any_text, any_text)
    def check(text: str, name: str, url: str, to: str) -> None:
        nonlocal ran
        ran += 1
        body = {
            "from": CUSTOMER,
            "to": to,
            "text": text,
            "name": name,
            "file_url": f"https://cdn.example.com/{url}.jpg",
            "message_id": f"h{ran}",
        }
        raw = json.dumps(body).encode()  # lone surrogates as \\udXXX escapes
        response = client.post(path, raw, content_type=JSON)
        assert response.status_code in (200, 202), response.content
        report = InboundReport.objects.order_by("-pk").first()
        assert report is not None
        assert report.outcome != Outcome.RECEIVED
        assert report.body == raw.decode()

    check()
    assert ran >= examples(150)


# -- item 5: HEAD changes nothing -------------------------------------------------------------


def test_head_on_the_inbound_url_stores_nothing(client: Client) -> None:
    query = urlencode({"from": CUSTOMER, "text": "hi", "message_id": "h1"})
    response = client.head(f"{path_for()}?{query}")
    assert response.status_code == 200
    assert not InboundReport.objects.exists()
    assert not Message.objects.exists()
    # The same query string with GET is a report.
    assert client.get(f"{path_for()}?{query}").status_code == 200
    assert Message.objects.count() == 1


# -- item 9: rotating the inbound URL, and no signature in a log line --------------------------

NEW, OLD = "new-inbound-secret-2c4e6a8b0d", CALLBACK_SECRET


def test_the_inbound_url_rotates_with_callback_secret(client: Client, settings: Any) -> None:
    old_path = path_for(OLD)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": [NEW, OLD]}
    # The printed URL is signed by the new (first) secret...
    url = inbound.inbound_url()
    assert url is not None
    assert urlsplit(url).path == path_for(NEW)
    # ...and while both are listed, the URL the provider still has keeps working: no message lost.
    for number, path in (("1", old_path), ("2", path_for(NEW))):
        body = json.dumps({"from": CUSTOMER, "text": "hi", "message_id": number}).encode()
        assert post_raw(client, body, path).status_code == 200
    assert Message.objects.count() == 2
    # Once the provider has the new URL, the old secret is dropped: the old URL is refused.
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": [NEW]}
    body = json.dumps({"from": CUSTOMER, "text": "hi", "message_id": "3"}).encode()
    assert post_raw(client, body, old_path).status_code == 403
    assert post_raw(client, body, path_for(NEW)).status_code == 200


def test_the_apps_log_lines_carry_no_signature_or_secret(
    client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 64}
    good = path_for()
    forged = reverse("django_whatsapp:inbound", kwargs={"signature": inbound.sign("guess")})
    post_raw(client, b'{"from": "380501110003", "text": "hi"}', good)
    post_raw(client, b"not json at all", good)
    post_raw(client, b"x" * 100, good)  # 413, logged
    post_raw(client, b'{"from": "x"}', forged)  # 403, logged
    ours = [r for r in caplog.records if r.name.startswith("django_whatsapp")]
    assert len(ours) >= 3
    secrets = (CALLBACK_SECRET, inbound.sign(CALLBACK_SECRET), inbound.sign("guess"))
    for record in ours:
        line = record.getMessage()
        assert not any(secret in line for secret in secrets), line
