"""Signed callback URLs: each names one message and only that one; secrets can be rotated."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import resolve

from django_whatsapp.conf import get_settings
from django_whatsapp.signing import callback_url, sign, verify
from django_whatsapp.webhooks.callback import CallbackView

SECRET = "test-callback-secret-1a2b3c"
MESSAGE_UUID = uuid.UUID("6f1c2f9e-8a51-4c0b-9d43-2a7e5b1c9d10")
OTHER_UUID = uuid.UUID("0b7d4c2a-1e3f-4a5b-8c6d-7e8f9a0b1c2d")


def use_secrets(settings: Any, secrets: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_SECRET": secrets}


def test_signature_is_a_hex_hmac_that_depends_on_uuid_and_secret() -> None:
    signature = sign(MESSAGE_UUID, SECRET)

    assert len(signature) == 64
    assert int(signature, 16) >= 0
    assert sign(MESSAGE_UUID, SECRET) == signature
    assert sign(str(MESSAGE_UUID), SECRET) == signature
    assert sign(OTHER_UUID, SECRET) != signature
    assert sign(MESSAGE_UUID, SECRET + "x") != signature


def test_verify_accepts_only_the_signature_of_this_uuid() -> None:
    signature = sign(MESSAGE_UUID, SECRET)

    assert verify(MESSAGE_UUID, signature)
    assert verify(str(MESSAGE_UUID), signature)
    assert not verify(OTHER_UUID, signature)
    assert not verify(MESSAGE_UUID, sign(OTHER_UUID, SECRET))
    assert not verify(MESSAGE_UUID, sign(MESSAGE_UUID, "another-secret"))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: "",
        lambda s: s[:-1],
        lambda s: s + "0",
        lambda s: s.upper(),
        lambda s: s[::-1],
        lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"),
        lambda s: "\u00e9" + s[1:],
    ],
    ids=["empty", "truncated", "extended", "upper", "reversed", "last-char", "non-ascii"],
)
def test_verify_refuses_a_tampered_signature(tamper: Any) -> None:
    assert not verify(MESSAGE_UUID, tamper(sign(MESSAGE_UUID, SECRET)))


def test_every_configured_secret_verifies(settings: Any) -> None:
    secrets = ["newest", "older", "oldest"]
    use_secrets(settings, secrets)

    for secret in secrets:
        assert verify(MESSAGE_UUID, sign(MESSAGE_UUID, secret))
    assert not verify(MESSAGE_UUID, sign(MESSAGE_UUID, "retired"))


def test_the_first_secret_signs(settings: Any) -> None:
    use_secrets(settings, ["newest", SECRET])

    url = callback_url(MESSAGE_UUID)

    assert url is not None
    assert url.endswith(f"/{sign(MESSAGE_UUID, 'newest')}/")


def test_a_url_signed_before_rotation_still_verifies(settings: Any) -> None:
    before = callback_url(MESSAGE_UUID)
    use_secrets(settings, ["newest", SECRET])
    after = callback_url(MESSAGE_UUID)

    assert before is not None
    assert after is not None
    assert before != after
    for url in (before, after):
        kwargs = resolve(urlsplit(url).path).kwargs
        assert verify(kwargs["message_uuid"], kwargs["signature"])


@pytest.mark.parametrize("secrets", [None, "", []])
def test_nothing_verifies_without_a_secret(settings: Any, secrets: Any) -> None:
    use_secrets(settings, secrets)

    assert get_settings().CALLBACK_SECRETS == ()
    assert not verify(MESSAGE_UUID, sign(MESSAGE_UUID, SECRET))
    assert not verify(MESSAGE_UUID, "")


def test_callback_url_is_absolute_and_routes_to_the_callback_view() -> None:
    url = callback_url(MESSAGE_UUID)

    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "https://app.example.com"
    assert parts.path == f"/whatsapp/callback/{MESSAGE_UUID}/{sign(MESSAGE_UUID, SECRET)}/"
    match = resolve(parts.path)
    assert match.view_name == "django_whatsapp:callback"
    assert match.func.view_class is CallbackView  # type: ignore[attr-defined]
    assert match.kwargs == {
        "message_uuid": str(MESSAGE_UUID),
        "signature": sign(MESSAGE_UUID, SECRET),
    }


def test_callback_url_joins_a_base_with_a_trailing_slash(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "CALLBACK_BASE_URL": "https://hooks.example.org/",
    }

    url = callback_url(MESSAGE_UUID)

    assert url is not None
    assert url.startswith("https://hooks.example.org/whatsapp/callback/")


def test_no_callback_url_without_a_callback_base(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_BASE_URL": None}

    assert callback_url(MESSAGE_UUID) is None


def test_callback_base_without_a_secret_is_a_configuration_error(settings: Any) -> None:
    use_secrets(settings, None)

    with pytest.raises(ImproperlyConfigured, match="CALLBACK_SECRET"):
        callback_url(MESSAGE_UUID)
