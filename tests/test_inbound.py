"""The inbound endpoint: customers' messages, stored raw first, read when they can be.

Every report is posted through Django's test client to the signed URL the provider would be given
(``inbound.inbound_url``), so the signature, routing, middleware, parsing and storing all run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import inbound, signals
from django_whatsapp.models import Contact, InboundReport, Message

from .conftest import CALLBACK_SECRET
from .examples import examples

pytestmark = pytest.mark.django_db

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CUSTOMER = "380501234567"
Outcome = InboundReport.Outcome
Status = Message.Status


def inbound_path(secret: str | None = None) -> str:
    if secret is not None:
        return reverse("django_whatsapp:inbound", kwargs={"signature": inbound.sign(secret)})
    url = inbound.inbound_url()
    assert url is not None
    return urlsplit(url).path


def post(
    client: Client, body: Any, content_type: str = JSON, *, path: str | None = None, **extra: Any
) -> Any:
    path = path or inbound_path()
    if isinstance(body, bytes | str):
        data: Any = body
    elif content_type == JSON:
        data = json.dumps(body)
    elif content_type == FORM:
        data = urlencode(body)
    else:
        return client.post(path, body, **extra)  # multipart
    return client.post(path, data, content_type=content_type, **extra)


def plain(**changes: Any) -> dict[str, Any]:
    """A message in the gateway family's own field names (those of a send, mirrored)."""
    body: dict[str, Any] = {
        "message_id": 9001,
        "source_addr": CUSTOMER,
        "destination_addr": "TestCo",
        "message_type": 1,
        "text": "Hello, is my order ready?",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def meta(*messages: dict[str, Any], name: str = "Ann") -> dict[str, Any]:
    """A body shaped like Meta's Cloud API webhook."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [{"profile": {"name": name}, "wa_id": CUSTOMER}],
                            "messages": list(messages),
                        },
                    }
                ],
            }
        ],
    }


def meta_text(
    text: str = "Hi from Meta", mid: str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRB"
) -> Any:
    return {
        "from": CUSTOMER,
        "id": mid,
        "timestamp": str(int(timezone.now().timestamp()) - 60),
        "type": "text",
        "text": {"body": text},
    }


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    """Every ``message_received`` signal sent while the test runs."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append({"sender": sender, **kwargs})

    signals.message_received.connect(receiver, dispatch_uid="test_inbound.received")
    yield calls
    signals.message_received.disconnect(dispatch_uid="test_inbound.received")


def only_report() -> InboundReport:
    return InboundReport.objects.get()


def assert_nothing_stored() -> None:
    assert InboundReport.objects.count() == 0
    assert Message.objects.count() == 0


# -- understood ----------------------------------------------------------------------------------


def test_plain_message_is_stored_raw_then_as_an_inbound_message(
    client: Client, received: list
) -> None:
    body = json.dumps(plain())

    response = post(client, body)

    assert response.status_code == 200
    assert response.json() == {"ok": True, "outcome": "understood", "received": 1, "duplicates": 0}
    message = Message.objects.get()
    assert message.direction == Message.Direction.INBOUND
    assert message.is_inbound
    assert message.destination_addr == CUSTOMER  # the contact: conversations group by it
    assert message.source_addr == "TestCo"  # us
    assert message.message_type == Message.MessageType.TEXT
    assert message.text == "Hello, is my order ready?"
    assert message.status == Status.DELIVERED
    assert message.provider_message_id is None  # nothing to poll
    assert message.events.count() == 0
    report = only_report()
    assert report.method == "POST"
    assert report.content_type == JSON
    assert report.body == body
    assert report.body_size == len(body.encode())
    assert report.outcome == Outcome.UNDERSTOOD
    assert report.sender == CUSTOMER
    assert list(report.messages.all()) == [message]
    assert [(c["sender"], c["message"], c["report"]) for c in received] == [
        (Message, message, report)
    ]
    assert received[0]["message"].is_inbound


def test_the_contacts_window_opens(client: Client) -> None:
    before = timezone.now()
    post(client, plain())
    contact = Contact.objects.get(number=CUSTOMER)
    assert contact.last_inbound_at is not None
    assert before - timedelta(seconds=1) <= contact.last_inbound_at <= timezone.now()


def test_image_with_caption(client: Client) -> None:
    response = post(
        client,
        plain(message_type=2, file_url="https://cdn.example.com/p/photo.JPG", text="My receipt"),
    )
    assert response.status_code == 200
    message = Message.objects.get()
    assert message.message_type == Message.MessageType.MEDIA
    assert message.file_url == "https://cdn.example.com/p/photo.JPG"
    assert message.text == "My receipt"


@pytest.mark.parametrize(
    ("body", "text", "file_url", "ours"),
    [
        ({"from": "+380 50 123-45-67", "to": "TestCo", "message": "a"}, "a", "", "TestCo"),
        ({"msisdn": CUSTOMER, "body": "b", "id": "x-1"}, "b", "", "TestCo"),
        ({"phone": int(CUSTOMER), "text": "c"}, "c", "", "TestCo"),
        ({"sender": CUSTOMER, "message": {"type": "text", "text": "d"}}, "d", "", "TestCo"),
        ({"from": CUSTOMER, "media_url": "https://x.io/a.png"}, "", "https://x.io/a.png", "TestCo"),
        (
            {"from": CUSTOMER, "url": "https://x.io/b.jpeg", "caption": "e"},
            "e",
            "https://x.io/b.jpeg",
            "TestCo",
        ),
        (
            {"from": CUSTOMER, "image": {"link": "https://x.io/c.jpg", "caption": "f"}},
            "f",
            "https://x.io/c.jpg",
            "TestCo",
        ),
        (
            {"source_addr": CUSTOMER, "destination_addr": "+15550783881", "text": "g"},
            "g",
            "",
            "15550783881",
        ),
    ],
)
def test_the_gateway_family_field_names(
    client: Client, body: dict[str, Any], text: str, file_url: str, ours: str
) -> None:
    response = post(client, body)
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "understood"
    message = Message.objects.get()
    assert (message.destination_addr, message.text, message.file_url, message.source_addr) == (
        CUSTOMER,
        text,
        file_url,
        ours,
    )


def test_form_encoded_post(client: Client) -> None:
    response = post(client, plain(), FORM)
    assert response.status_code == 200
    assert Message.objects.get().text == "Hello, is my order ready?"
    assert only_report().body == urlencode(plain())


def test_multipart_post(client: Client) -> None:
    response = post(client, plain(), "multipart")
    assert response.status_code == 200
    assert Message.objects.get().destination_addr == CUSTOMER
    assert "Hello, is my order ready?" in only_report().body


def test_get_with_query_string(client: Client) -> None:
    query = urlencode(plain())
    response = client.get(f"{inbound_path()}?{query}")
    assert response.status_code == 200
    assert Message.objects.get().text == "Hello, is my order ready?"
    report = only_report()
    assert (report.method, report.query_string, report.body) == ("GET", query, "")


def test_post_with_the_message_in_the_query_string(client: Client) -> None:
    response = client.post(f"{inbound_path()}?{urlencode(plain())}")
    assert response.status_code == 200
    assert Message.objects.get().text == "Hello, is my order ready?"


def test_json_list_of_messages(client: Client) -> None:
    body = [plain(message_id=1, text="one"), plain(message_id=2, text="two")]
    response = post(client, body)
    assert response.json()["received"] == 2
    assert sorted(Message.objects.values_list("text", flat=True)) == ["one", "two"]
    assert only_report().messages.count() == 2


# -- Meta-shaped bodies ------------------------------------------------------------------------


def test_meta_webhook_text(client: Client, received: list) -> None:
    sent = meta_text()
    response = post(client, meta(sent))
    assert response.status_code == 200
    assert response.json()["outcome"] == "understood"
    message = Message.objects.get()
    assert (message.destination_addr, message.text) == (CUSTOMER, "Hi from Meta")
    assert message.source_addr == "15550783881"  # our number, from the metadata
    contact = Contact.objects.get()
    assert contact.name == "Ann"
    # The window runs from when the customer wrote, as the webhook says.
    assert contact.last_inbound_at == datetime.fromtimestamp(int(sent["timestamp"]), tz=UTC)
    assert len(received) == 1


def test_meta_messages_at_the_top_level(client: Client) -> None:
    body = {"messages": [{"from": CUSTOMER, "id": "wamid.1", "text": {"body": "top"}}]}
    assert post(client, body).json()["outcome"] == "understood"
    assert Message.objects.get().text == "top"


def test_meta_image_with_a_link(client: Client) -> None:
    item = {
        "from": CUSTOMER,
        "id": "wamid.img",
        "type": "image",
        "image": {"link": "https://lookaside.example.com/i.jpg", "caption": "Broken box"},
    }
    post(client, meta(item))
    message = Message.objects.get()
    assert message.message_type == Message.MessageType.MEDIA
    assert (message.file_url, message.text) == ("https://lookaside.example.com/i.jpg", "Broken box")


def test_meta_body_with_several_messages_stores_each(client: Client, received: list) -> None:
    response = post(client, meta(meta_text("one", "wamid.a"), meta_text("two", "wamid.b")))
    assert response.json() == {"ok": True, "outcome": "understood", "received": 2, "duplicates": 0}
    assert sorted(Message.objects.values_list("text", flat=True)) == ["one", "two"]
    assert only_report().messages.count() == 2
    assert len(received) == 2


# -- partly understood -------------------------------------------------------------------------


def test_sender_without_text_or_image_is_stored_as_partial(client: Client, received: list) -> None:
    """A voice note, a location...: the customer wrote (the window opens, the conversation shows
    it), and the report keeps what could not be read."""
    item = {"from": CUSTOMER, "id": "wamid.voice", "type": "audio", "audio": {"id": "99"}}

    response = post(client, meta(item))

    assert response.status_code == 200
    answer = response.json()
    assert answer["outcome"] == "partial"
    assert "no text and no image link (type audio)" in answer["detail"]
    message = Message.objects.get()
    assert (message.text, message.file_url, message.is_inbound) == ("", "", True)
    report = only_report()
    assert report.outcome == Outcome.PARTIAL
    assert "type audio" in report.detail
    assert Contact.objects.get(number=CUSTOMER).last_inbound_at is not None
    assert len(received) == 1


def test_image_without_a_usable_link_keeps_its_caption(client: Client) -> None:
    item = {
        "from": CUSTOMER,
        "id": "wamid.i2",
        "type": "image",
        "image": {"id": "1", "caption": "c"},
    }
    answer = post(client, meta(item)).json()
    assert answer["outcome"] == "partial"
    assert "media without a usable http(s) link" in answer["detail"]
    assert Message.objects.get().text == "c"


def test_a_non_http_link_is_not_kept(client: Client) -> None:
    answer = post(client, plain(file_url="javascript:alert(1)//x.jpg", text="")).json()
    assert answer["outcome"] == "partial"
    assert Message.objects.get().file_url == ""


def test_items_without_a_sender_are_skipped_and_said_so(client: Client) -> None:
    body = [plain(), {"text": "who am I?"}]
    answer = post(client, body).json()
    assert answer["outcome"] == "partial"
    assert "an item was skipped: no sender" in answer["detail"]
    assert Message.objects.count() == 1


# -- not understood ----------------------------------------------------------------------------

NOT_UNDERSTOOD = [
    pytest.param({"foo": "bar"}, JSON, "no sender", id="no-sender"),
    pytest.param({"message_id": 554, "status": 1}, JSON, "no sender", id="a-status-callback"),
    pytest.param(
        {"entry": [{"changes": [{"value": {"statuses": [{"id": "w", "status": "read"}]}}]}]},
        JSON,
        "status report",
        id="meta-statuses",
    ),
    pytest.param(plain(source_addr="not a number"), JSON, "not a phone number", id="bad-sender"),
    pytest.param(plain(source_addr="1" * 21), JSON, "not a phone number", id="long-sender"),
    pytest.param(b'{"source_addr": ', JSON, "Malformed JSON", id="malformed-json"),
    pytest.param(b"[" * 50_000, JSON, "Malformed JSON", id="deeply-nested"),
    pytest.param(b'"just a string"', JSON, "Expected a JSON object", id="json-string"),
    pytest.param(b"<xml>hi</xml>", "application/xml", "is not understood", id="xml"),
    pytest.param(b"", JSON, "no sender", id="empty-post"),
    pytest.param([plain(message_id=i) for i in range(21)], JSON, "More than 20", id="too-many"),
]


@pytest.mark.parametrize(("body", "content_type", "reason"), NOT_UNDERSTOOD)
def test_not_understood_is_stored_raw_and_answered_202(
    client: Client, received: list, body: Any, content_type: str, reason: str
) -> None:
    response = post(client, body, content_type)

    assert response.status_code == 202, response.content
    answer = response.json()
    assert answer["ok"] is True
    assert answer["outcome"] == "not_understood"
    assert answer["stored"] is True
    assert reason in answer["reason"]
    report = only_report()
    assert report.outcome == Outcome.NOT_UNDERSTOOD
    assert reason in report.detail
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert report.body == raw.decode()
    assert Message.objects.count() == 0
    assert received == []


def test_bytes_that_are_not_utf8_are_kept_as_escapes(client: Client) -> None:
    response = post(client, b"\xff\xfe caf\xe9 \x00", "text/plain")
    assert response.status_code == 202
    assert only_report().body == "\\xff\\xfe caf\\xe9 \\x00"


def test_nul_characters_in_a_message_are_stored(client: Client) -> None:
    response = post(client, plain(text="a\u0000b"))
    assert response.status_code == 200
    assert Message.objects.get().text == "a\\x00b"


# -- duplicates --------------------------------------------------------------------------------


def test_the_same_message_twice_is_stored_once(client: Client, received: list) -> None:
    first = post(client, plain())
    second = post(client, plain(text="the same id, so the same message"))

    assert first.status_code == second.status_code == 200
    assert second.json() == {"ok": True, "outcome": "duplicate", "received": 0, "duplicates": 1}
    message = Message.objects.get()
    reports = list(InboundReport.objects.order_by("pk"))
    assert [r.outcome for r in reports] == [Outcome.UNDERSTOOD, Outcome.DUPLICATE]
    assert all(list(r.messages.all()) == [message] for r in reports)
    assert len(received) == 1


def test_a_report_is_linked_to_its_messages_in_one_statement(client: Client) -> None:
    """A reply's link (report to message) is one ``INSERT`` in autocommit:
    ``report.messages.add`` opened a transaction of its own for it (``BEGIN`` and ``COMMIT``
    on PostgreSQL: two statements more for every reply)."""
    table = InboundReport.messages.through._meta.db_table
    about_links: list[tuple[str, int]] = []
    test_depth = len(connection.atomic_blocks)  # the test's own transaction

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if table in sql:
            about_links.append((sql, len(connection.atomic_blocks) - test_depth))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        response = post(client, plain())

    assert response.json()["received"] == 1
    [(sql, transactions_of_its_own)] = about_links
    assert sql.lstrip().upper().startswith("INSERT")
    assert transactions_of_its_own == 0
    assert list(only_report().messages.all()) == [Message.objects.get()]


def test_a_report_received_again_keeps_one_link_a_message(client: Client) -> None:
    """``inbound.receive`` run again over a stored report (as a reprocessing would) passes over
    the links already there: a plain ``INSERT`` of each link raised ``IntegrityError``."""
    report = inbound.store_report(
        method="POST", content_type=JSON, body=json.dumps(plain()).encode()
    )
    first = inbound.receive(report, plain())
    again = inbound.receive(report, plain())

    [message] = first.created
    assert again.duplicates == [message]
    assert list(report.messages.all()) == [message]


def test_a_message_named_twice_in_one_report_is_linked_once(client: Client) -> None:
    response = post(client, {"messages": [plain(), plain(text="again")]})

    assert response.json()["received"] == 1
    message = Message.objects.get()
    links = InboundReport.messages.through.objects.filter(message=message)
    assert links.count() == 1


def test_the_same_id_from_another_sender_is_another_message(client: Client) -> None:
    post(client, plain())
    post(client, plain(source_addr="380509999999"))
    assert Message.objects.count() == 2


def test_without_an_id_the_same_body_is_a_duplicate_and_another_is_not(client: Client) -> None:
    body = {"from": CUSTOMER, "text": "ok", "timestamp": 1_900_000_000}
    post(client, body)
    assert post(client, body).json()["outcome"] == "duplicate"
    post(client, {**body, "timestamp": 1_900_000_060})
    assert Message.objects.count() == 2


def test_meta_redelivery_is_a_duplicate(client: Client) -> None:
    body = meta(meta_text())
    post(client, body)
    assert post(client, body).json()["duplicates"] == 1
    assert Message.objects.count() == 1


# -- signature and limits ----------------------------------------------------------------------


def test_bad_signature_is_refused_before_anything_is_stored(client: Client) -> None:
    path = inbound_path()
    tampered = path[:-3] + ("0" if path[-3] != "0" else "1") + path[-2:]
    response = post(client, plain(), path=tampered)
    assert response.status_code == 403
    assert response.json()["ok"] is False
    assert_nothing_stored()


def test_signature_by_an_unknown_secret_is_refused(client: Client) -> None:
    assert post(client, plain(), path=inbound_path("some-other-secret")).status_code == 403
    assert_nothing_stored()


def test_the_callback_signature_of_a_message_does_not_open_the_inbound_url(client: Client) -> None:
    from django_whatsapp.signing import sign

    wrong = reverse("django_whatsapp:inbound", kwargs={"signature": sign("x", CALLBACK_SECRET)})
    assert post(client, plain(), path=wrong).status_code == 403


def test_missing_signature_is_refused(client: Client) -> None:
    response = post(client, plain(), path=reverse("django_whatsapp:inbound-unsigned"))
    assert response.status_code == 403
    assert_nothing_stored()


def test_no_secret_configured_refuses_everything(client: Client, settings: Any) -> None:
    path = inbound_path()
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": None}
    assert post(client, plain(), path=path).status_code == 403
    assert_nothing_stored()


def test_secret_rotation_keeps_the_old_url_working(client: Client, settings: Any) -> None:
    old = inbound_path()
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "CALLBACK_SECRET": ["brand-new-secret", CALLBACK_SECRET],
    }
    assert inbound_path() != old
    assert post(client, plain(message_id=1), path=old).status_code == 200
    assert post(client, plain(message_id=2)).status_code == 200


def test_body_over_the_limit_is_refused_and_its_arrival_kept(client: Client, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 100}
    body = json.dumps(plain(text="x" * 200))

    response = post(client, body)

    assert response.status_code == 413
    assert response.json()["ok"] is False
    report = only_report()
    assert (report.outcome, report.body, report.body_size) == (Outcome.REFUSED, "", len(body))
    assert "over the limit of 100" in report.detail
    assert Message.objects.count() == 0


def test_djangos_own_upload_limit_is_a_413_too(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50
    response = post(client, plain())
    assert response.status_code == 413
    assert only_report().outcome == Outcome.REFUSED


def test_bad_content_length_is_refused(client: Client) -> None:
    response = client.post(inbound_path(), b"{}", content_type=JSON, CONTENT_LENGTH="-5")
    assert response.status_code == 400
    assert_nothing_stored()


def test_a_plain_get_says_it_is_ready_and_stores_nothing(client: Client) -> None:
    response = client.get(inbound_path())
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert_nothing_stored()


def test_head_changes_nothing(client: Client) -> None:
    assert client.head(f"{inbound_path()}?{urlencode(plain())}").status_code == 200
    assert_nothing_stored()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_refused_in_json(client: Client, method: str) -> None:
    response = getattr(client, method)(inbound_path(), json.dumps(plain()), content_type=JSON)
    assert response.status_code == 405
    assert response.json()["ok"] is False
    assert_nothing_stored()


def test_csrf_and_login_are_not_required_and_authorization_is_ignored(
    admin_user: Any,
) -> None:
    """The test project runs CsrfViewMiddleware and LoginRequiredMiddleware."""
    csrf_client = Client(enforce_csrf_checks=True)
    response = post(csrf_client, plain(), HTTP_AUTHORIZATION="Basic YWRtaW46cGFzc3dvcmQ=")
    assert response.status_code == 200
    assert post(csrf_client, plain(message_id=2), FORM).status_code == 200
    assert Message.objects.count() == 2
    assert Message.objects.filter(created_by__isnull=False).count() == 0


def test_any_accept_header_is_answered_in_json(client: Client) -> None:
    response = post(client, plain(), HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


# -- the URL to give the provider --------------------------------------------------------------


def test_inbound_url_is_absolute_and_signed(settings: Any) -> None:
    url = inbound.inbound_url()
    assert url is not None
    assert url.startswith("https://app.example.com/whatsapp/inbound/")
    assert url.endswith(f"/{inbound.sign(CALLBACK_SECRET)}/")
    assert inbound.verify(inbound.sign(CALLBACK_SECRET))
    assert not inbound.verify("0" * 64)


def test_inbound_url_without_a_public_origin_is_none(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_BASE_URL": None}
    assert inbound.inbound_url() is None
    assert inbound.inbound_path().startswith("/whatsapp/inbound/")


def test_inbound_url_needs_a_secret(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": None}
    with pytest.raises(ImproperlyConfigured, match="CALLBACK_SECRET"):
        inbound.inbound_url()


# -- outbound-only logic leaves inbound messages alone ---------------------------------------


def test_resync_never_polls_an_inbound_message(client: Client, gateway: Any) -> None:
    post(client, plain())
    call_command("whatsapp_resync", stdout=(out := _Out()))
    assert gateway.requests == []
    assert "Polled 0" in out.text


def test_admin_send_actions_skip_inbound_messages(
    client: Client, admin_client: Client, gateway: Any
) -> None:
    post(client, plain())
    message = Message.objects.get()
    for action in ("send_drafts", "refresh_statuses", "retry_not_sent"):
        response = admin_client.post(
            reverse("admin:django_whatsapp_message_changelist"),
            {"action": action, "index": 0, "_selected_action": [message.pk]},
            follow=True,
        )
        assert response.status_code == 200
        assert "skipped" in " ".join(str(m) for m in response.context["messages"])
    assert gateway.requests == []
    message.refresh_from_db()
    assert message.status == Status.DELIVERED


def test_the_services_do_not_send_an_inbound_message(client: Client, gateway: Any) -> None:
    from django_whatsapp import services

    post(client, plain())
    message = Message.objects.get()
    services.send_message(message)
    assert gateway.requests == []
    assert message.status == Status.DELIVERED


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


# -- nothing the sender sends makes a server error --------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "from",
                    "to",
                    "text",
                    "body",
                    "message",
                    "id",
                    "image",
                    "link",
                    "messages",
                    "entry",
                    "changes",
                    "value",
                    "timestamp",
                    "source_addr",
                    "file_url",
                    "contacts",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(body=json_values)
@hypothesis_settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_nothing_the_sender_sends_makes_a_server_error(client: Client, body: Any) -> None:
    response = client.post(inbound_path(), json.dumps(body), content_type=JSON)
    assert response.status_code in (200, 202), (body, response.content)
    assert response.json()["ok"] is True
