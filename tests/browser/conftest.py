"""Browser tests: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API
against pytest-django's live server, with the sandbox gateway mounted at /sandbox/.

Where Chromium or the playwright package is missing the tests are skipped, saying how to get
them; where the environment variable CI is set, they fail instead, so CI cannot pass without them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from django_whatsapp.sandbox.gateway import gateway as sandbox
from tests.waiting import LIMIT, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: Debian's Chromium; another build can be named with the CHROMIUM environment variable.
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW_TO_ENABLE = (
    "to run the browser tests, install Debian's Chromium and Playwright's Python package: "
    "`apt-get install chromium` and `pip install playwright` (never `playwright install`)"
)
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"
#: Milliseconds Playwright waits for a page, an element or an ``expect`` before failing.
BROWSER_WAIT_MS = 60_000


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """pytest-django's live server, serving one request at a time (tests/browser/serial.py)."""
    import requests
    from django.conf import settings
    from pytest_django import live_server_helper

    from tests.browser import serial

    previous = settings.MIDDLEWARE
    settings.MIDDLEWARE = ["tests.browser.serial.SerialRequests", *previous]
    address = (
        request.config.getvalue("liveserver")
        or os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS")
        or "localhost"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests, "post", serial.post)
        server = live_server_helper.LiveServer(address)
        try:
            yield server
        finally:
            server.stop()
            settings.MIDDLEWARE = previous


@pytest.fixture(autouse=True)
def test_queries_wait_for_requests() -> Iterator[None]:
    """The test's own queries one at a time with the live server's requests
    (tests/browser/serial.py)."""
    import threading

    from django.db import connection

    from tests.browser import serial

    with connection.execute_wrapper(serial.test_thread_queries_wait(threading.get_ident())):
        yield


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives headless Chromium against a live server")
    config.addinivalue_line(
        "markers", "screenshots: writes docs/img/*.png (run `python docs/screenshots.py`)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The screenshots rewrite files under docs/: only when asked for with -m screenshots.
    if "screenshots" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="writes docs/img; run `python docs/screenshots.py`")
    for item in items:
        if item.get_closest_marker("screenshots"):
            item.add_marker(skip)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing"
    return None


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    reason = missing()
    if reason is not None:
        message = f"{reason}: {HOW_TO_ENABLE}"
        if in_ci():
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # Generous limits for every wait on the page (a loaded machine renders slowly); they end as
    # soon as what is awaited shows.
    expect.set_options(timeout=BROWSER_WAIT_MS)

    # Playwright's sync API runs an event loop in this thread while it is open (so only for
    # this package's tests); the tests' own ORM calls are still synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def site(live_server: Any, settings: Any) -> Iterator[Any]:
    """The live server, sending to its own sandbox and receiving the sandbox's callbacks."""
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": f"{live_server.url}/sandbox/v1/api",
        "CALLBACK_BASE_URL": live_server.url,
        "SANDBOX_CALLBACK_DELAY": 0.2,
        "MAX_RETRIES": 0,
    }
    sandbox.reset()
    yield live_server
    # No callback may arrive while the database is being emptied for the next test.
    sandbox.reset()


@pytest.fixture
def operator(django_user_model: Any, site: Any) -> Any:
    return django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


@pytest.fixture
def open_console(chromium: Browser, site: Any, operator: Any) -> Iterator[Callable[..., Page]]:
    """Opens logged-in pages; ``open_console(javascript=False)`` for a browser without
    JavaScript, ``dark=True`` for the dark theme."""
    contexts = []

    def opener(*, javascript: bool = True, locale: str = "en-US", dark: bool = False) -> Page:
        context = chromium.new_context(
            viewport={"width": 1280, "height": 900},
            java_script_enabled=javascript,
            locale=locale,
            color_scheme="dark" if dark else "light",
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(BROWSER_WAIT_MS)
        log_in(page, site.url, operator.username)
        return page

    yield opener
    for context in contexts:
        context.close()


@pytest.fixture
def console(open_console: Callable[..., Page]) -> Page:
    """A logged-in page with JavaScript (named apart from pytest-playwright's ``page``)."""
    return open_console()


def wait_for_status(page: Page, status: str, timeout: float = LIMIT) -> None:
    """Reload the change view until its badge shows ``status`` (the sandbox calls back)."""
    badge = page.locator(".field-status_badge .wa-badge")

    def shows_status() -> bool:
        if badge.get_attribute("data-status") == status:
            return True
        page.reload()
        return False

    wait_until(
        shows_status,
        what=f"the status badge to show {status!r}",
        timeout=timeout,
        interval=0.2,
        describe=lambda: f"it shows {badge.get_attribute('data-status')!r}",
    )
