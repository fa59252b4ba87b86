"""System checks: each problem has its id and a hint, and a good configuration has none."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_whatsapp.checks import check_settings

GOOD = {
    "API_KEY": "k",
    "CALLBACK_BASE_URL": "https://example.com",
    "CALLBACK_SECRET": "s",
}


def ids(**conf: Any) -> list[str]:
    with override_settings(DJANGO_WHATSAPP=conf):
        return [message.id for message in check_settings() if message.id]


@pytest.fixture
def no_sandbox(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.urls_without_sandbox"


def test_good_configuration_has_no_messages(no_sandbox: None) -> None:
    assert ids(**GOOD) == []


def test_missing_api_key_against_the_real_gateway_is_an_error(no_sandbox: None) -> None:
    assert ids(**{**GOOD, "API_KEY": None}) == ["django_whatsapp.E002"]


def test_missing_api_key_is_fine_against_a_loopback_sandbox(no_sandbox: None) -> None:
    conf = {**GOOD, "API_KEY": None, "BASE_URL": "http://127.0.0.1:8000/sandbox/v1/api"}
    assert ids(**conf) == []


def test_callbacks_without_a_secret_are_an_error(no_sandbox: None) -> None:
    assert ids(**{**GOOD, "CALLBACK_SECRET": None}) == ["django_whatsapp.E003"]


def test_an_invalid_setting_is_reported_not_raised(no_sandbox: None) -> None:
    with override_settings(DJANGO_WHATSAPP={**GOOD, "TIMEOUT": "soon"}):
        messages = check_settings()
    assert [m.id for m in messages] == ["django_whatsapp.E001"]
    assert "TIMEOUT" in messages[0].msg
    assert messages[0].hint


@pytest.mark.parametrize(
    ("debug", "origin", "expected"),
    [
        (False, "http://example.com", ["django_whatsapp.W001"]),
        (True, "http://example.com", []),
        (False, "https://example.com", []),
        (False, "http://127.0.0.1:8000", []),
    ],
)
def test_plain_http_callback_origin_outside_debug_is_a_warning(
    no_sandbox: None, settings: Any, debug: bool, origin: str, expected: list[str]
) -> None:
    settings.DEBUG = debug
    assert ids(**{**GOOD, "CALLBACK_BASE_URL": origin}) == expected


def test_sandbox_mounted_with_debug_off_is_a_warning(settings: Any) -> None:
    settings.DEBUG = False
    assert ids(**GOOD) == ["django_whatsapp.W002"]
    settings.DEBUG = True
    assert ids(**GOOD) == []


@pytest.mark.django_db  # Django 6.1's check command looks at the database too
def test_errors_stop_manage_py_check(no_sandbox: None) -> None:
    with (
        override_settings(DJANGO_WHATSAPP={**GOOD, "CALLBACK_SECRET": None}),
        pytest.raises(SystemCheckError, match=r"django_whatsapp\.E003"),
    ):
        call_command("check")


def test_every_message_has_a_hint(no_sandbox: None, settings: Any) -> None:
    settings.DEBUG = False
    with override_settings(
        DJANGO_WHATSAPP={"API_KEY": None, "CALLBACK_BASE_URL": "http://example.com"}
    ):
        messages = check_settings()
    assert {m.id for m in messages} == {
        "django_whatsapp.E002",
        "django_whatsapp.E003",
        "django_whatsapp.W001",
    }
    assert all(m.hint for m in messages)


# -- the memory gateway (django_whatsapp.testing) ----------------------------------------------


def test_memory_base_url_outside_tests_with_debug_off_warns(
    no_sandbox: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django.core import mail

    settings.DEBUG = False
    # As in production: Django's test environment (which creates mail.outbox) is not set up.
    monkeypatch.delattr(mail, "outbox")
    assert ids(**{**GOOD, "BASE_URL": "memory://"}) == ["django_whatsapp.W010"]


def test_memory_base_url_is_quiet_in_tests_and_with_debug_on(
    no_sandbox: None, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django.core import mail

    settings.DEBUG = False
    assert ids(**{**GOOD, "BASE_URL": "memory://"}) == []  # under the test runner
    monkeypatch.delattr(mail, "outbox")
    settings.DEBUG = True
    assert ids(**{**GOOD, "BASE_URL": "memory://"}) == []  # development
    # No API key is needed for the memory gateway: no E002.
    settings.DEBUG = False
    assert ids(**{**GOOD, "BASE_URL": "memory://", "API_KEY": None}) == ["django_whatsapp.W010"]


SANDBOX_BASE = "http://127.0.0.1:8000/sandbox/v1/api"


@pytest.mark.parametrize(
    ("base_url", "callback_base_url", "expected"),
    [
        # README's first example: the sandbox's callbacks would go to a host that is not here.
        (SANDBOX_BASE, "https://example.com", ["django_whatsapp.W003"]),
        (SANDBOX_BASE, "http://127.0.0.1:8001", ["django_whatsapp.W003"]),  # another port
        (SANDBOX_BASE, "https://127.0.0.1:8000", ["django_whatsapp.W003"]),  # another scheme
        (SANDBOX_BASE, "http://127.0.0.1:8000", []),
        (SANDBOX_BASE, "http://localhost:8000/", []),  # a loopback name is the same server
        ("http://demo.internal:8080/sandbox/v1/api", "http://demo.internal:8080", []),
        (SANDBOX_BASE, None, []),  # no callbacks at all
        # The real gateway: the sandbox is mounted but not used.
        ("https://web.it-decision.com/v1/api", "https://example.com", []),
    ],
)
def test_the_sandbox_in_use_must_be_able_to_call_back(
    settings: Any, base_url: str, callback_base_url: str | None, expected: list[str]
) -> None:
    settings.DEBUG = True
    conf = {**GOOD, "BASE_URL": base_url, "CALLBACK_BASE_URL": callback_base_url}
    if callback_base_url is None:
        conf.pop("CALLBACK_SECRET")

    assert ids(**conf) == expected


def test_the_sandbox_warning_says_where_to_point_callbacks(settings: Any) -> None:
    settings.DEBUG = True
    with override_settings(
        DJANGO_WHATSAPP={**GOOD, "BASE_URL": SANDBOX_BASE, "CALLBACK_BASE_URL": "https://x.io"}
    ):
        (warning,) = check_settings()

    assert "https://x.io" in warning.msg
    assert warning.hint is not None
    assert "set CALLBACK_BASE_URL to http://127.0.0.1:8000" in warning.hint


def test_without_the_sandbox_mounted_nothing_is_said_about_it(no_sandbox: None) -> None:
    conf = {**GOOD, "BASE_URL": SANDBOX_BASE, "API_KEY": None}
    assert ids(**conf) == []
