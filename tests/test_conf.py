"""The one settings accessor: defaults, validation that names the key, read at call time."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import DEFAULTS, WhatsAppSettings, get_settings

from .conftest import API_KEY, CALLBACK_SECRET

SECRETS = (API_KEY, CALLBACK_SECRET, base64.b64encode(API_KEY.encode()).decode())


def test_defaults(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {}

    conf = get_settings()

    assert conf == WhatsAppSettings(
        API_KEY=None,
        BASE_URL="https://web.it-decision.com/v1/api",
        SEND_PATH="send-whatsapp",
        STATUS_PATH="receive-whatsapp",
        DEFAULT_SOURCE_ADDR=None,
        CALLBACK_BASE_URL=None,
        CALLBACK_SECRETS=(),
        TIMEOUT=(5.0, 30.0),
        MAX_RETRIES=3,
        SEND_ASYNC=False,
        CALLBACK_MAX_BYTES=65536,
        SANDBOX_CALLBACK_DELAY=1.0,
    )
    assert conf.send_url == "https://web.it-decision.com/v1/api/send-whatsapp"
    assert conf.status_url == "https://web.it-decision.com/v1/api/receive-whatsapp"
    assert conf.callbacks_enabled is False


def test_defaults_without_the_setting_at_all(settings: Any) -> None:
    del settings.DJANGO_WHATSAPP

    assert get_settings().BASE_URL == "https://web.it-decision.com/v1/api"
    assert DEFAULTS["BASE_URL"] == "https://web.it-decision.com/v1/api"
    assert get_settings().API_KEY is None


def test_the_test_settings_are_read(settings: Any) -> None:
    conf = get_settings()

    assert conf.API_KEY == API_KEY
    assert conf.DEFAULT_SOURCE_ADDR == "TestCo"
    assert conf.CALLBACK_BASE_URL == "https://app.example.com"
    assert conf.CALLBACK_SECRETS == (CALLBACK_SECRET,)
    assert conf.TIMEOUT == (2.0, 5.0)
    assert conf.callbacks_enabled is True


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("TIMEOUT", 10, (10.0, 10.0)),
        ("TIMEOUT", 2.5, (2.5, 2.5)),
        ("TIMEOUT", [3, 7], (3.0, 7.0)),
        ("TIMEOUT", (0.1, 0.2), (0.1, 0.2)),
        ("MAX_RETRIES", 0, 0),
        ("MAX_RETRIES", 10, 10),
        ("CALLBACK_SECRET", "one", ("one",)),
        ("CALLBACK_SECRET", ["new", "old"], ("new", "old")),
        ("CALLBACK_SECRET", ("new", "old"), ("new", "old")),
        ("CALLBACK_SECRET", "", ()),
        ("CALLBACK_SECRET", None, ()),
        ("CALLBACK_BASE_URL", "https://example.com/", "https://example.com"),
        ("CALLBACK_BASE_URL", "", None),
        ("DEFAULT_SOURCE_ADDR", "A" * 20, "A" * 20),
        ("DEFAULT_SOURCE_ADDR", "", None),
        ("API_KEY", "", None),
        ("SEND_ASYNC", True, True),
        ("SANDBOX_CALLBACK_DELAY", 0, 0.0),
        ("CALLBACK_MAX_BYTES", 1, 1),
    ],
)
def test_accepted_values(key: str, value: Any, expected: Any, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, key: value}

    attribute = "CALLBACK_SECRETS" if key == "CALLBACK_SECRET" else key
    assert getattr(get_settings(), attribute) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TIMEOUT", 0),
        ("TIMEOUT", -1),
        ("TIMEOUT", None),
        ("TIMEOUT", "5"),
        ("TIMEOUT", True),
        ("TIMEOUT", (1,)),
        ("TIMEOUT", (1, 2, 3)),
        ("TIMEOUT", (1, 0)),
        ("TIMEOUT", (1, None)),
        ("TIMEOUT", "12"),
        ("TIMEOUT", float("inf")),
        ("TIMEOUT", float("nan")),
        ("TIMEOUT", (5, float("inf"))),
        ("MAX_RETRIES", -1),
        ("MAX_RETRIES", 1.5),
        ("MAX_RETRIES", "3"),
        ("MAX_RETRIES", True),
        ("MAX_RETRIES", None),
        ("BASE_URL", "ftp://web.it-decision.com/v1/api"),
        ("BASE_URL", "web.it-decision.com/v1/api"),
        ("BASE_URL", "http://"),
        ("BASE_URL", ""),
        ("BASE_URL", None),
        ("SEND_PATH", ""),
        ("SEND_PATH", None),
        ("STATUS_PATH", 5),
        ("API_KEY", 12345),
        ("DEFAULT_SOURCE_ADDR", "A" * 21),
        ("DEFAULT_SOURCE_ADDR", 380),
        ("CALLBACK_BASE_URL", "app.example.com"),
        ("CALLBACK_BASE_URL", "https://"),
        ("CALLBACK_BASE_URL", ["https://app.example.com"]),
        ("CALLBACK_SECRET", 12345),
        ("CALLBACK_SECRET", ["new", ""]),
        ("CALLBACK_SECRET", ["new", 7]),
        ("CALLBACK_SECRET", b"bytes"),
        ("CALLBACK_SECRET", {"new": "old"}),
        ("SEND_ASYNC", "yes"),
        ("SEND_ASYNC", 1),
        ("CALLBACK_MAX_BYTES", 0),
        ("SANDBOX_CALLBACK_DELAY", -1),
        ("SANDBOX_CALLBACK_DELAY", "1"),
        ("CAMPAIGN_LEASE", 0),
        ("CAMPAIGN_LEASE", "60"),
        ("OUTAGE_MAX_PAUSE", 0.1),
        ("OUTAGE_MAX_PAUSE", None),
    ],
)
def test_bad_values_name_their_key(key: str, value: Any, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, key: value}

    with pytest.raises(ImproperlyConfigured, match=rf"DJANGO_WHATSAPP\['{key}'\] "):
        get_settings()


def test_unknown_keys_are_named(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "API_TOKEN": "x", "RETRIES": 2}

    with pytest.raises(ImproperlyConfigured) as caught:
        get_settings()

    assert "unknown keys: API_TOKEN, RETRIES" in str(caught.value)
    assert "MAX_RETRIES" in str(caught.value)  # the known keys are listed


@pytest.mark.parametrize("value", [None, "https://web.it-decision.com", ["API_KEY"]])
def test_the_setting_must_be_a_dict(value: Any, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = value

    with pytest.raises(ImproperlyConfigured, match=r"settings\.DJANGO_WHATSAPP must be a dict"):
        get_settings()


def test_urls_are_joined_with_one_slash(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        "BASE_URL": "http://127.0.0.1:8000/sandbox/v1/api/",
        "SEND_PATH": "/send",
        "STATUS_PATH": "status/",
    }

    conf = get_settings()

    assert conf.send_url == "http://127.0.0.1:8000/sandbox/v1/api/send"
    assert conf.status_url == "http://127.0.0.1:8000/sandbox/v1/api/status/"


def test_a_missing_api_key_is_named_when_it_is_needed(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {"BASE_URL": "http://127.0.0.1:9/v1/api"}

    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_WHATSAPP\['API_KEY'\] is not set"):
        get_settings().require_api_key()
    with pytest.raises(ImproperlyConfigured, match=r"\['API_KEY'\]"):
        WhatsAppClient.from_settings()


def test_a_missing_callback_secret_is_named_when_it_is_needed(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {"CALLBACK_BASE_URL": "https://app.example.com"}

    with pytest.raises(ImproperlyConfigured, match=r"DJANGO_WHATSAPP\['CALLBACK_SECRET'\]"):
        get_settings().require_callback_secrets()

    settings.DJANGO_WHATSAPP = {"CALLBACK_SECRET": ["a", "b"]}
    assert get_settings().require_callback_secrets() == ("a", "b")


def test_settings_are_read_at_call_time() -> None:
    base = get_settings()
    assert base.MAX_RETRIES == 3

    with override_settings(
        DJANGO_WHATSAPP={"API_KEY": "other-key", "MAX_RETRIES": 0, "TIMEOUT": (1, 2)}
    ):
        conf = get_settings()
        client = WhatsAppClient.from_settings()
        assert (conf.MAX_RETRIES, conf.TIMEOUT, conf.API_KEY) == (0, (1.0, 2.0), "other-key")
        assert (client.max_retries, client.timeout) == (0, (1.0, 2.0))
        assert client.send_url == "https://web.it-decision.com/v1/api/send-whatsapp"
        client.close()

    assert get_settings() == base


def test_from_settings_uses_the_given_snapshot(settings: Any) -> None:
    conf = get_settings()
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "MAX_RETRIES": 9}

    with WhatsAppClient.from_settings(conf) as client:
        assert client.max_retries == 3
    with WhatsAppClient.from_settings() as client:
        assert client.max_retries == 9


def _assert_masked(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    "secret", [CALLBACK_SECRET, [CALLBACK_SECRET, "older-secret-5e6f"]], ids=["str", "list"]
)
def test_settings_repr_masks_secrets(secret: Any, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": secret}

    conf = get_settings()

    for text in (repr(conf), str(conf), f"{conf!r}"):
        _assert_masked(text)
        assert "older-secret-5e6f" not in text
        assert "API_KEY='***'" in text
        assert "CALLBACK_SECRET='***'" in text
        assert "BASE_URL='http://127.0.0.1:9/v1/api'" in text


def test_settings_repr_without_secrets(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {}

    assert "API_KEY=None" in repr(get_settings())
    assert "CALLBACK_SECRET=()" in repr(get_settings())


def test_client_repr_masks_the_key() -> None:
    with WhatsAppClient.from_settings() as client:
        text = repr(client)
        assert (
            text
            == "WhatsAppClient(send_url='http://127.0.0.1:9/v1/api/send-whatsapp', api_key='***')"
        )
        _assert_masked(text)
        _assert_masked(repr(vars(client)))  # the key is not even in the attributes' reprs


# -- the validated settings are kept while the setting does not change -------------------------


def test_the_validated_settings_are_kept_while_the_setting_is_unchanged() -> None:
    first = get_settings()

    assert get_settings() is first


def test_a_setting_changed_in_place_is_read_again(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 1000}
    assert get_settings().CALLBACK_MAX_BYTES == 1000

    settings.DJANGO_WHATSAPP["CALLBACK_MAX_BYTES"] = 2000  # the same dict, changed in place

    assert get_settings().CALLBACK_MAX_BYTES == 2000


def test_a_nested_change_in_place_is_read_again(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {"eu": {"API_KEY": "eu-key", "DEFAULT_SOURCE_ADDR": "EUCo"}},
    }
    assert get_settings("eu").DEFAULT_SOURCE_ADDR == "EUCo"

    settings.DJANGO_WHATSAPP["ACCOUNTS"]["eu"]["DEFAULT_SOURCE_ADDR"] = "EUCo2"

    assert get_settings("eu").DEFAULT_SOURCE_ADDR == "EUCo2"


def test_an_overridden_setting_is_read_and_the_old_one_comes_back(settings: Any) -> None:
    before = get_settings().CALLBACK_MAX_BYTES
    with override_settings(DJANGO_WHATSAPP={**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 7}):
        assert get_settings().CALLBACK_MAX_BYTES == 7

    assert before == get_settings().CALLBACK_MAX_BYTES


def test_a_setting_made_invalid_in_place_is_refused(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP}
    get_settings()

    settings.DJANGO_WHATSAPP["TIMEOUT"] = "soon"

    with pytest.raises(ImproperlyConfigured, match="TIMEOUT"):
        get_settings()


def test_an_accounts_settings_by_name(settings: Any) -> None:
    from django_whatsapp.conf import get_account_settings

    accounts = {"outlet": {"API_KEY": "outlet-key", "DEFAULT_SOURCE_ADDR": "Outlet"}}
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": accounts}
    outlet = get_account_settings("outlet")
    assert (outlet.account, outlet.API_KEY, outlet.DEFAULT_SOURCE_ADDR) == (
        "outlet",
        "outlet-key",
        "Outlet",
    )
    with pytest.raises(ImproperlyConfigured, match="has no account 'shop'"):
        get_account_settings("shop")
