"""The operator's console: compose, send, follow a message; permissions."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from django_whatsapp.models import Message, StatusEvent, Template

from .factories import make_draft as make
from .factories import staff_client

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:django_whatsapp_message_add")
LIST_URL = reverse("admin:django_whatsapp_message_changelist")
Status = Message.Status


def change_url(message: Message) -> str:
    return reverse("admin:django_whatsapp_message_change", args=[message.pk])


def tool_url(message: Message, tool: str) -> str:
    return reverse(f"admin:django_whatsapp_message_{tool}", args=[message.pk])


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """Staff who may only look at messages."""
    return staff_client(django_user_model, "viewer", "view_message", "view_template")


@pytest.fixture
def drafter(django_user_model: Any) -> Client:
    """Staff who may write drafts but not send."""
    return staff_client(
        django_user_model, "drafter", "view_message", "add_message", "change_message"
    )


def compose(**fields: Any) -> dict[str, Any]:
    data = {"message_type": 1, "destination_addr": "+380 67 123 45 67", "source_addr": "Shop"}
    data.update(fields)
    return data


def errors_of(response: Any) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {field: [str(e) for e in errors] for field, errors in form.errors.items()}


# -- compose -----------------------------------------------------------------------------------


def test_compose_page_has_a_section_per_type_and_both_buttons(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL)
    html = response.content.decode()
    assert response.status_code == 200
    for kind in ("1", "2", "4"):
        assert f'data-wa-type="{kind}"' in html
    assert 'name="_save"' in html
    assert 'name="_send"' in html
    assert 'id="wa-templates"' in html  # the template bodies for the preview script
    assert "django_whatsapp/compose.js" in html
    # The default sender, as the sender's placeholder: left empty, it is the account's.
    assert 'placeholder="TestCo"' in html


def test_choosing_a_template_by_link_shows_its_body_header_and_one_input_per_placeholder(
    admin_client: Client, template: Template
) -> None:
    response = admin_client.get(f"{ADD_URL}?message_type=4&template={template.pk}")
    html = response.content.decode()
    assert '<mark class="wa-placeholder">{{1}}</mark>' in html
    assert 'name="param_1"' in html
    assert 'name="param_2"' in html
    assert 'name="param_3"' not in html
    assert "Header image URL" in html
    assert 'value="4" class="radiolist inline" required id="id_message_type_2" checked' in html


def test_without_javascript_update_form_rerenders_with_the_templates_inputs(
    admin_client: Client, template: Template, gateway: Any
) -> None:
    data = compose(message_type=4, template=template.pk, _refresh="1")
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="param_2"' in html
    assert "errornote" not in html
    assert not Message.objects.exists()
    assert gateway.requests == []


def test_save_draft_keeps_a_valid_message_unsent(
    admin_client: Client, admin_user: Any, gateway: Any
) -> None:
    response = admin_client.post(ADD_URL, compose(text="Hi there", _save="1"))
    assert response.status_code == 302
    message = Message.objects.get()
    assert message.status == Status.DRAFT
    assert message.destination_addr == "380671234567"
    assert message.created_by == admin_user
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("fields", "field", "expected"),
    [
        ({"text": "  "}, "text", "Enter the message text."),
        ({"text": "x" * 4097}, "text", "at most 4096 are allowed"),
        ({"destination_addr": "call me", "text": "Hi"}, "destination_addr", "digits only"),
        ({"destination_addr": "1" * 21, "text": "Hi"}, "destination_addr", "21 digits"),
        ({"source_addr": "S" * 21, "text": "Hi"}, "source_addr", "at most 20 are allowed"),
        ({"message_type": 2, "file_url": "ftp://x.com/a.jpg"}, "file_url", "http:// or https://"),
        ({"message_type": 2, "file_url": "https://x.com/a.gif"}, "file_url", ".jpg, .jpeg or .png"),
        ({"message_type": 2, "file_url": ""}, "file_url", "Enter the image's URL."),
        (
            {"message_type": 2, "file_url": "https://x.com/a.png", "caption": "c" * 4097},
            "caption",
            "at most 4096",
        ),
        ({"message_type": 4}, "template", "Choose a template."),
    ],
)
def test_every_rule_of_the_services_shows_on_its_field_and_nothing_is_sent(
    admin_client: Client, gateway: Any, fields: dict[str, Any], field: str, expected: str
) -> None:
    response = admin_client.post(ADD_URL, compose(_send="1", **fields))
    assert response.status_code == 200
    errors = errors_of(response)
    assert any(expected in e for e in errors.get(field, [])), errors
    assert not Message.objects.exists()
    assert gateway.requests == []


def test_template_rules_show_on_the_placeholder_and_header_inputs(
    admin_client: Client, template: Template, gateway: Any
) -> None:
    data = compose(message_type=4, template=template.pk, param_1="Ann", header="ftp://x/a.jpg")
    response = admin_client.post(ADD_URL, {**data, "_send": "1"})
    errors = errors_of(response)
    assert errors["param_2"] == ["Template parameters cannot be empty."]
    assert "param_1" not in errors
    assert "http:// or https://" in errors["header"][0]
    response = admin_client.post(ADD_URL, {**data, "header": "", "param_2": "42", "_send": "1"})
    assert errors_of(response) == {"header": ["This template needs a header value."]}
    assert gateway.requests == []


def test_an_inactive_template_is_not_offered(admin_client: Client, template: Template) -> None:
    template.is_active = False
    template.save()
    response = admin_client.post(ADD_URL, compose(message_type=4, template=template.pk))
    assert "template" in errors_of(response)


def test_save_and_send_a_text_sends_through_the_gateway_and_shows_the_message(
    admin_client: Client, gateway: Any
) -> None:
    gateway.accept()
    response = admin_client.post(ADD_URL, compose(text="Your order is ready", _send="1"))
    message = Message.objects.get()
    assert response.status_code == 302
    assert response["Location"] == change_url(message)
    assert message.status == Status.ACCEPTED
    assert message.provider_message_id == 1001
    [body] = gateway.sent_bodies()
    assert body["text"] == "Your order is ready"
    assert body["destination_addr"] == 380671234567
    assert body["source_addr"] == "Shop"
    page = admin_client.get(response["Location"]).content.decode()
    assert "The gateway accepted the message (id 1001)." in page


def test_save_and_send_an_image_and_a_template(
    admin_client: Client, gateway: Any, template: Template
) -> None:
    gateway.accept()
    admin_client.post(
        ADD_URL,
        compose(
            message_type=2, file_url="https://cdn.example.com/a.PNG", caption="Look", _send="1"
        ),
    )
    admin_client.post(
        ADD_URL,
        compose(
            message_type=4,
            template=template.pk,
            param_1="Ann",
            param_2="A-42",
            header="https://cdn.example.com/h.jpg",
            text="left over from another section",
            _send="1",
        ),
    )
    image, filled = gateway.sent_bodies()
    assert image["message_type"] == 2
    assert image["file_url"] == "https://cdn.example.com/a.PNG"
    assert image["text"] == "Look"
    assert filled["message_type"] == 4
    assert filled["template_name"] == "order_ready"
    assert '"text": "A-42"' in filled["template_params"]
    assert "text" not in filled
    message = Message.objects.get(message_type=4)
    assert message.text == ""
    assert message.template_params == {
        "body": ["Ann", "A-42"],
        "header": "https://cdn.example.com/h.jpg",
    }


def test_a_refused_send_is_reported_with_its_reason(admin_client: Client, gateway: Any) -> None:
    gateway.answer(
        {
            "name": "Topup balance is required",
            "message": "User balance is empty",
            "code": 3,
            "status": 402,
        },
        402,
    )
    response = admin_client.post(ADD_URL, compose(text="Hi", _send="1"), follow=True)
    message = Message.objects.get()
    assert message.status == Status.NOT_SENT
    html = response.content.decode()
    assert "The message was not sent: The account balance is empty." in html
    assert "Top up the DecisionTelecom account" in html
    assert 'name="retry"' in html


def test_a_draft_can_be_edited_and_then_sent(admin_client: Client, gateway: Any) -> None:
    gateway.accept()
    draft = make(
        message_type=Message.MessageType.MEDIA, text="Caption", file_url="https://x.io/a.jpg"
    )
    page = admin_client.get(change_url(draft)).content.decode()
    assert "Caption</textarea>" in page  # shown as the image's caption
    response = admin_client.post(
        change_url(draft), compose(message_type=2, file_url="https://x.io/b.jpg", _send="1")
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == Status.ACCEPTED
    assert draft.file_url == "https://x.io/b.jpg"
    assert draft.text == ""


# -- follow ------------------------------------------------------------------------------------


def test_the_change_view_shows_badge_bubble_and_timeline_newest_first(admin_client: Client) -> None:
    message = make(Status.DELIVERED, provider_message_id=77)
    StatusEvent.objects.create(message=message, status=Status.ACCEPTED, source="send")
    StatusEvent.objects.create(
        message=message,
        status=Status.DELIVERED,
        source="callback",
        provider_status=1,
        payload={"message_id": 77, "status": 1},
    )
    html = admin_client.get(change_url(message)).content.decode()
    assert 'class="wa-badge wa-tone-good" data-status="delivered"' in html
    assert 'class="wa-bubble-text">Hello<' in html
    assert html.index(
        'data-status="delivered">Delivered</span>\n          <span class="wa-event-source">Callback'
    ) < html.index('data-status="accepted"')
    assert "provider code 1" in html
    assert 'name="refresh"' in html
    assert 'name="retry"' not in html


def test_a_sent_message_is_read_only(admin_client: Client, gateway: Any) -> None:
    message = make(Status.ACCEPTED, provider_message_id=5)
    html = admin_client.get(change_url(message)).content.decode()
    assert 'name="destination_addr"' not in html
    assert 'name="_send"' not in html
    response = admin_client.post(change_url(message), compose(text="changed", _save="1"))
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.text == "Hello"


def test_a_closed_service_window_is_explained_as_needing_a_template(admin_client: Client) -> None:
    message = make(
        Status.NOT_SENT,
        error_code=7,
        error_name="Service Unavailable",
        error_message="Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    )
    html = admin_client.get(change_url(message)).content.decode()
    assert "The customer&#x27;s 24-hour window is closed" in html
    assert "only accepts a template message" in html


def test_refresh_status_polls_the_gateway(admin_client: Client, gateway: Any) -> None:
    message = make(Status.ACCEPTED, provider_message_id=4321)
    gateway.status(4321, 7)
    response = admin_client.post(tool_url(message, "refresh"))
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.status == Status.SEEN
    assert message.events.get().source == "poll"
    assert admin_client.get(tool_url(message, "refresh")).status_code == 405


def test_retry_sends_a_not_sent_message_again(admin_client: Client, gateway: Any) -> None:
    gateway.accept()
    message = make(Status.NOT_SENT, error_code=2, error_name="Internal server error")
    response = admin_client.post(tool_url(message, "retry"), follow=True)
    message.refresh_from_db()
    assert message.status == Status.ACCEPTED
    assert [e.source for e in message.events.order_by("pk")] == ["admin", "send"]
    assert "The gateway accepted the message" in response.content.decode()
    assert len(gateway.sent_bodies()) == 1


def test_retry_of_a_message_that_went_out_changes_nothing(
    admin_client: Client, gateway: Any
) -> None:
    message = make(Status.DELIVERED, provider_message_id=9)
    response = admin_client.post(tool_url(message, "retry"), follow=True)
    assert "Only a message that was not sent can be retried." in response.content.decode()
    assert gateway.requests == []


# -- permissions -------------------------------------------------------------------------------


def test_view_only_staff_see_no_send_buttons_or_actions(viewer: Client) -> None:
    message = make(Status.NOT_SENT, provider_message_id=None)
    accepted = make(Status.ACCEPTED, provider_message_id=11)
    for page in (change_url(message), change_url(accepted)):
        html = viewer.get(page).content.decode()
        assert 'name="retry"' not in html
        assert 'name="refresh"' not in html
    changelist = viewer.get(LIST_URL).content.decode()
    assert "send_drafts" not in changelist
    assert "retry_not_sent" not in changelist
    assert viewer.get(ADD_URL).status_code == 403


@pytest.mark.parametrize("tool", ["refresh", "retry"])
def test_forged_tool_posts_are_refused(viewer: Client, gateway: Any, tool: str) -> None:
    message = make(Status.NOT_SENT, provider_message_id=12)
    assert viewer.post(tool_url(message, tool)).status_code == 403
    message.refresh_from_db()
    assert message.status == Status.NOT_SENT
    assert gateway.requests == []


@pytest.mark.parametrize("action", ["send_drafts", "refresh_statuses", "retry_not_sent"])
def test_forged_action_posts_are_refused(drafter: Client, gateway: Any, action: str) -> None:
    message = make(Status.DRAFT)
    response = drafter.post(
        LIST_URL, {"action": action, "index": 0, "_selected_action": [message.pk]}
    )
    assert response.status_code == 403
    assert gateway.requests == []


def test_a_drafter_saves_drafts_but_cannot_send(drafter: Client, gateway: Any) -> None:
    html = drafter.get(ADD_URL).content.decode()
    assert 'name="_save"' in html
    assert 'name="_send"' not in html
    assert drafter.post(ADD_URL, compose(text="Hi", _send="1")).status_code == 403
    assert not Message.objects.exists()
    assert drafter.post(ADD_URL, compose(text="Hi", _save="1")).status_code == 302
    draft = Message.objects.get()
    assert drafter.post(change_url(draft), compose(text="Hi", _send="1")).status_code == 403
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert gateway.requests == []


def test_without_an_api_key_the_draft_is_kept_and_the_operator_told(
    admin_client: Client, gateway: Any, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "API_KEY": None}
    response = admin_client.post(ADD_URL, compose(text="Hi", _send="1"), follow=True)
    assert "Nothing was sent: the gateway is not configured." in response.content.decode()
    assert Message.objects.get().status == Status.DRAFT
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("fields", "title"),
    [
        (
            {"error_name": "Invalid Parameter: destination_addr", "error_code": 1},
            "The gateway refused the recipient's phone number",
        ),
        (
            {"error_name": "Topup balance is required", "error_code": 3},
            "The account balance is empty",
        ),
        (
            {"error_name": "Internal server error", "error_code": 2},
            "The gateway had an internal error",
        ),
        ({"error_name": "Too Many Requests", "error_code": 0}, "Too many requests"),
        (
            {
                "error_name": "Service Unavailable",
                "error_message": "you can only send a template message",
                "error_code": 7,
            },
            "The customer's 24-hour window is closed",
        ),
        ({"status": Status.REJECTED}, "Rejected"),
        (
            {"error_name": "Unauthorized", "error_message": "Access key is missing or invalid"},
            "The gateway refused the access key",
        ),
        (
            {"error_name": "Odd", "error_message": "Something else", "attempts": 1},
            "The gateway refused the message",
        ),
        (
            # Refused before any request, for a reason this app does not know the name of.
            {"error_name": "Odd", "error_message": "Something else", "attempts": 0},
            "The message was stopped before it went out",
        ),
        ({"status": Status.UNKNOWN, "error_name": "Transport error"}, "No answer from the gateway"),
    ],
)
def test_errors_are_explained_in_plain_words(
    admin_client: Client, fields: dict[str, Any], title: str
) -> None:
    message = make(**{"status": Status.NOT_SENT, **fields})
    html = admin_client.get(change_url(message)).content.decode()
    expected = escape(title)
    assert f'<strong class="wa-error-title">{expected}</strong>' in html


def test_the_tools_need_the_csrf_token(admin_user: Any, gateway: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    message = make(Status.NOT_SENT)
    assert client.post(tool_url(message, "retry")).status_code == 403
    message.refresh_from_db()
    assert message.status == Status.NOT_SENT
    assert gateway.requests == []


def test_refresh_without_a_provider_id_or_with_a_refusing_gateway_says_why(
    admin_client: Client, gateway: Any
) -> None:
    never = make(Status.UNKNOWN)
    page = admin_client.post(tool_url(never, "refresh"), follow=True).content.decode()
    assert "The message has no provider id yet" in page
    accepted = make(Status.ACCEPTED, provider_message_id=31)
    gateway.answer(
        {"name": "Unauthorized", "message": "Access key is missing", "code": 401, "status": 401},
        401,
        path="/v1/api/receive-whatsapp",
    )
    page = admin_client.post(tool_url(accepted, "refresh"), follow=True).content.decode()
    assert "The gateway did not tell the status: Unauthorized" in page
    accepted.refresh_from_db()
    assert accepted.status == Status.ACCEPTED


def test_a_lost_answer_is_reported_as_unknown(admin_client: Client, gateway: Any) -> None:
    gateway.answer("<html>proxy error</html>", 200)
    response = admin_client.post(ADD_URL, compose(text="Hi", _send="1"), follow=True)
    assert Message.objects.get().status == Status.UNKNOWN
    assert "The gateway&#x27;s answer was lost" in response.content.decode()


# -- what the operator can do about a failed message -------------------------------------------

WINDOW_CLOSED = {
    "error_code": 7,
    "error_name": "Service Unavailable",
    "error_message": "Message failed to send because more than 24 hours have passed since the "
    "customer last replied to this number.",
}


def remedy_links(html: str) -> dict[str, str]:
    """What the error box offers instead of a retry: {"template" or "copy": its URL}."""
    found = re.findall(r'<a class="button wa-remedy" data-remedy="(\w+)" href="([^"]+)"', html)
    return {kind: unescape(href) for kind, href in found}


def test_a_closed_window_offers_a_template_to_the_recipient_instead_of_a_retry(
    admin_client: Client, gateway: Any
) -> None:
    message = make(Status.NOT_SENT, **WINDOW_CLOSED)

    html = admin_client.get(change_url(message)).content.decode()

    assert 'name="retry"' not in html
    links = remedy_links(html)
    assert list(links) == ["template"]
    assert links["template"] == f"{ADD_URL}?message_type=4&destination_addr=380671234567"
    assert "Send a template instead" in html
    form = admin_client.get(links["template"]).context["adminform"].form
    assert form.initial["destination_addr"] == "380671234567"
    assert str(form.initial["message_type"]) == "4"


def test_a_forged_retry_of_a_closed_window_sends_nothing_and_says_why(
    admin_client: Client, gateway: Any
) -> None:
    message = make(Status.NOT_SENT, **WINDOW_CLOSED)

    response = admin_client.post(tool_url(message, "retry"), follow=True)

    message.refresh_from_db()
    assert message.status == Status.NOT_SENT
    assert gateway.requests == []
    assert "Not retried: The customer&#x27;s 24-hour window is closed." in (
        response.content.decode()
    )


def test_an_invalid_parameter_names_the_field_and_offers_a_copy_to_correct(
    admin_client: Client,
) -> None:
    message = make(
        Status.NOT_SENT,
        text="Your order A-7 is ready",
        source_addr="Shop",
        error_code=1,
        error_name="Invalid Parameter: destination_addr",
    )

    html = admin_client.get(change_url(message)).content.decode()

    assert "The gateway refused the recipient&#x27;s phone number" in html
    assert "The recipient&#x27;s phone number is empty or not in the form" in html
    assert 'name="retry"' not in html
    links = remedy_links(html)
    assert list(links) == ["copy"]
    form = admin_client.get(links["copy"]).context["adminform"].form
    assert form.initial["text"] == "Your order A-7 is ready"
    assert form.initial["destination_addr"] == "380671234567"
    assert form.initial["source_addr"] == "Shop"
    assert str(form.initial["message_type"]) == "1"


def test_a_copy_of_a_template_message_keeps_its_template_parameters_and_header(
    admin_client: Client, template: Template
) -> None:
    message = make(
        Status.NOT_SENT,
        message_type=Message.MessageType.TEMPLATE,
        template=template,
        text="",
        template_params={"body": ["Ann", "A-42"], "header": "https://x.io/h.jpg"},
        error_code=1,
        error_name="Invalid Parameter: header",
    )

    html = admin_client.get(change_url(message)).content.decode()
    form = admin_client.get(remedy_links(html)["copy"]).context["adminform"].form

    assert "The gateway refused the template&#x27;s header" in html
    assert form.chosen_template == template
    assert [form[name].value() for name in form.param_names] == ["Ann", "A-42"]
    assert form["header"].value() == "https://x.io/h.jpg"


def test_a_copy_of_an_image_keeps_its_url_and_caption(admin_client: Client) -> None:
    message = make(
        Status.NOT_SENT,
        message_type=Message.MessageType.MEDIA,
        file_url="https://x.io/cat.png",
        text="Cat",
        error_name="Odd",
        error_message="Something else",
        attempts=1,
    )

    html = admin_client.get(change_url(message)).content.decode()
    form = admin_client.get(remedy_links(html)["copy"]).context["adminform"].form

    assert form["file_url"].value() == "https://x.io/cat.png"
    assert form["caption"].value() == "Cat"


@pytest.mark.parametrize(
    ("fields", "retry"),
    [
        ({"error_code": 2, "error_name": "Internal server error"}, True),
        ({"error_code": 0, "error_name": "Too Many Requests"}, True),
        ({"error_code": 3, "error_name": "Topup balance is required"}, True),
        ({"error_name": "Unauthorized", "error_message": "Access key is missing"}, True),
        ({"error_name": "Transport error", "error_message": "connection refused"}, True),
        ({"error_name": "Not submitted", "error_message": "RuntimeError: hook"}, True),
        (WINDOW_CLOSED, False),
        ({"error_code": 1, "error_name": "Invalid Parameter: text"}, False),
        ({"error_name": "Odd", "error_message": "Something else", "attempts": 1}, False),
    ],
)
def test_retry_is_offered_only_where_it_can_help(
    admin_client: Client, fields: dict[str, Any], retry: bool
) -> None:
    message = make(Status.NOT_SENT, **fields)

    html = admin_client.get(change_url(message)).content.decode()

    assert ('name="retry"' in html) is retry
    assert bool(remedy_links(html)) is not retry


def test_the_retry_action_skips_messages_a_retry_cannot_help(
    admin_client: Client, gateway: Any
) -> None:
    gateway.accept()
    closed = make(Status.NOT_SENT, **WINDOW_CLOSED)
    refused = make(Status.NOT_SENT, error_code=1, error_name="Invalid Parameter: text")
    busy = make(Status.NOT_SENT, error_code=2, error_name="Internal server error")

    response = admin_client.post(
        LIST_URL,
        {
            "action": "retry_not_sent",
            "index": 0,
            "_selected_action": [closed.pk, refused.pk, busy.pk],
            "post": "yes",
        },
        follow=True,
    )

    statuses = {m.pk: m.status for m in Message.objects.all()}
    assert statuses == {
        closed.pk: Status.NOT_SENT,
        refused.pk: Status.NOT_SENT,
        busy.pk: Status.ACCEPTED,
    }
    assert len(gateway.sent_bodies()) == 1
    assert (
        "2 messages skipped: not “not sent”, or a retry cannot help." in response.content.decode()
    )
