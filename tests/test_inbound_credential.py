"""The inbound URL's credential stays out of the logs (SPEC 13): the app masks its signature in
django.request's and runserver's records (their message and the request they carry, so error
e-mails too), the signature can be rotated (INBOUND_SECRET, a list), and system checks warn when a
logger would write the raw URL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import django
import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory, override_settings

from django_whatsapp import inbound, logs
from django_whatsapp.checks import check_settings
from django_whatsapp.conf import get_settings
from django_whatsapp.models import InboundReport

from .conftest import CALLBACK_SECRET

pytestmark = pytest.mark.django_db


def inbound_path() -> str:
    url = inbound.inbound_url()
    assert url is not None
    return urlsplit(url).path


def signature_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


def test_a_refused_method_is_logged_without_the_signature(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    path = inbound_path()
    signature = signature_of(path)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.put(path, b"{}", content_type="application/json")
    assert response.status_code == 405
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Method Not Allowed: /whatsapp/inbound/<signature>/"
    # A formatter showing the request sees the masked path too.
    shown = logging.Formatter("%(message)s %(request)s").format(record)
    assert signature not in shown
    assert "<signature>" in shown
    assert signature not in caplog.text


def test_an_error_e_mail_to_the_admins_holds_no_signature(settings: Any) -> None:
    """Django's own mail_admins handler (DEFAULT_LOGGING, DEBUG off) sends the error."""
    # Django 6.0 deprecates (name, address) pairs; 5.2 knows only them.
    settings.ADMINS = (
        ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
    )
    if django.VERSION >= (6, 1):  # 6.1 deprecates the default mailer: name the test's own
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    path = inbound_path()
    signature = signature_of(path)
    request = RequestFactory().post(path, b"{}", content_type="application/json")
    logging.getLogger("django.request").error(
        "Service Unavailable: %s", request.path, extra={"status_code": 503, "request": request}
    )
    assert mail.outbox
    for email in mail.outbox:
        assert signature not in email.subject
        assert signature not in email.body
    assert "/whatsapp/inbound/<signature>/" in mail.outbox[0].body
    assert request.path == path  # the request itself is not touched


def test_runservers_request_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    path = inbound_path()
    with caplog.at_level(logging.INFO, logger="django.server"):
        # As django.core.servers.basehttp.WSGIRequestHandler.log_message writes them.
        logging.getLogger("django.server").info(
            '"%s" %s %s', f"POST {path}?from=1 HTTP/1.1", "200", "52"
        )
    [record] = caplog.records
    assert record.getMessage() == '"POST /whatsapp/inbound/<signature>/?from=1 HTTP/1.1" 200 52'


def test_the_filter_is_installed_once_and_other_text_is_left_alone() -> None:
    logs.install()
    for name in logs.LOGGERS:
        found = [f for f in logging.getLogger(name).filters if isinstance(f, logs.MaskSignatures)]
        assert len(found) == 1
    assert logs.mask_signatures("GET /admin/?q=abc123 200") == "GET /admin/?q=abc123 200"
    short = "/whatsapp/inbound/0123456789abcdef/"  # 16 digits: not a signature
    assert logs.mask_signatures(short) == short


# -- rotating the inbound signature ------------------------------------------------------------


def post(client: Client, path: str, message_id: int) -> int:
    body = json.dumps({"message_id": message_id, "source_addr": "380501234567", "text": "hi"})
    response = client.post(path, body, content_type="application/json")
    return int(response.status_code)


def test_the_inbound_signature_rotates_without_touching_callbacks(
    client: Client, settings: Any
) -> None:
    old = inbound_path()  # signed with CALLBACK_SECRET, as before INBOUND_SECRET existed
    callback_secrets = get_settings().CALLBACK_SECRETS
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "INBOUND_SECRET": ["new-inbound-secret", CALLBACK_SECRET],
    }
    new = inbound_path()
    assert new != old
    assert (post(client, new, 1), post(client, old, 2)) == (200, 200)  # both, while rotating
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "INBOUND_SECRET": "new-inbound-secret"}
    assert post(client, new, 3) == 200
    assert post(client, old, 4) == 403  # the leaked URL is dead
    assert callback_secrets == get_settings().CALLBACK_SECRETS
    assert InboundReport.objects.count() == 3  # a refused request stores nothing


def test_inbound_secret_is_checked_and_masked_in_reprs(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "INBOUND_SECRET": ["in-secret-42"]}
    assert "in-secret-42" not in repr(get_settings())
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "INBOUND_SECRET": [""]}
    with pytest.raises(ImproperlyConfigured, match=r"\['INBOUND_SECRET'\]"):
        get_settings()


# -- the system checks --------------------------------------------------------------------------


def check_ids() -> list[str]:
    with override_settings(ROOT_URLCONF="tests.urls_without_sandbox"):
        return [m.id for m in check_settings() if m.id and m.id.startswith("django_whatsapp.W02")]


@pytest.fixture
def unmasked_request_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("django.request")
    kept = list(logger.filters)
    for found in kept:
        logger.removeFilter(found)
    yield logger
    for found in kept:
        logger.addFilter(found)


def test_a_request_logger_without_the_mask_is_a_warning(
    unmasked_request_logger: logging.Logger,
) -> None:
    assert check_ids() == ["django_whatsapp.W020"]


@pytest.fixture
def access_logger() -> Iterator[logging.Logger]:
    """gunicorn's access logger, as a project's LOGGING configures it, on its own handler. It
    is forgotten afterwards (a logger that exists and writes is what the check warns about)."""
    logger = logging.getLogger("gunicorn.access")
    logger.propagate = False
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    logger.filters.clear()
    logging.Logger.manager.loggerDict.pop("gunicorn.access", None)


def test_an_access_log_without_the_mask_is_a_warning(access_logger: logging.Logger) -> None:
    assert check_ids() == ["django_whatsapp.W021"]
    access_logger.addFilter(logs.MaskSignatures())  # as the docs say
    assert check_ids() == []


def test_no_warning_without_an_inbound_url(access_logger: logging.Logger, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "CALLBACK_SECRET": None,
        "CALLBACK_BASE_URL": None,
    }
    assert check_ids() == []


def test_a_good_configuration_has_no_log_warning() -> None:
    assert check_ids() == []
