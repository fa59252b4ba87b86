"""The example project, run for real: its own settings, commands and server, in subprocesses.

Each test gets a fresh SQLite file through DATABASE_URL and sets every variable of
``example_project/.env.example`` itself, so a developer's ``example_project/.env`` changes nothing.
The end-to-end tests serve the project with ``runserver`` on a free port and send through
``whatsapp_send`` in another process: the sandbox on that server accepts the message and calls the
project's callback URL back, over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.waiting import LIMIT, wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO_ROOT / "example_project"
COMMAND_TIMEOUT = 300
REQUEST_TIMEOUT = 30  # seconds for one answer from runserver, on a busy machine

SAMPLE_TEMPLATES = {
    ("appointment_reminder", "en_US", "text", 3),
    ("order_ready", "en_US", "image", 2),
    ("order_ready", "uk", "image", 2),
    ("welcome", "en_US", "none", 0),
}


def project_env(db_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of one example-project process: every documented variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WHATSAPP_"))}
    env.update(
        {
            "DJANGO_SECRET_KEY": "example-project-tests",
            "DJANGO_DEBUG": "True",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"sqlite:///{db_path}",
            "WHATSAPP_API_KEY": "",
            "WHATSAPP_BASE_URL": "",
            "WHATSAPP_SOURCE_ADDR": "DemoShop",
            "WHATSAPP_CALLBACK_BASE_URL": "http://127.0.0.1:8000",
            "WHATSAPP_CALLBACK_SECRET": "example-project-tests-callback-secret",
            "WHATSAPP_SANDBOX_CALLBACK_DELAY": "0.1",
            "DEMO_ADMIN_USERNAME": "admin",
            "DEMO_ADMIN_PASSWORD": "admin",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def manage_ok(env: dict[str, str], *args: str) -> str:
    result = manage(env, *args)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def shell_json(env: dict[str, str], code: str) -> Any:
    """Run ``code`` in ``manage.py shell``; it prints one JSON line last, which is returned."""
    stdout = manage_ok(env, "shell", "-c", code)
    return json.loads(stdout.strip().splitlines()[-1])


def query(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(db_path, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = LIMIT) -> None:
    wait_until(check, what=what, timeout=timeout)


def placeholder_count(body: str) -> int:
    return max((int(n) for n in re.findall(r"\{\{(\d+)\}\}", body)), default=0)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project's database once migrated (``manage.py migrate``); each test that
    needs one works on a copy of it."""
    db_path = tmp_path_factory.mktemp("migrated") / "demo.sqlite3"
    manage_ok(project_env(db_path), "migrate", "--noinput")
    return db_path


def migrated_copy(migrated: Path, directory: Path) -> Path:
    db_path = directory / "demo.sqlite3"
    shutil.copyfile(migrated, db_path)
    return db_path


# -- commands ------------------------------------------------------------------------------------


def test_demo_setup_is_idempotent_and_prints_the_login(tmp_path: Path, migrated: Path) -> None:
    db_path = migrated_copy(migrated, tmp_path)
    env = project_env(db_path)

    first = manage_ok(env, "demo_setup")
    second = manage_ok(env, "demo_setup")

    for output in (first, second):
        assert "http://127.0.0.1:8000/admin/" in output
        assert "username: admin" in output
        assert "password: admin" in output
    assert "Sample templates: 4 created, 0 already there." in first
    assert "Superuser admin: already there." in second
    assert "Sample templates: 0 created, 4 already there." in second
    users = query(db_path, "SELECT username, is_superuser, is_staff, is_active FROM auth_user")
    assert users == [("admin", 1, 1, 1)]
    rows = query(
        db_path, "SELECT name, language_code, header_type, body FROM django_whatsapp_template"
    )
    assert {(n, lang, header, placeholder_count(body)) for n, lang, header, body in rows} == (
        SAMPLE_TEMPLATES
    )
    assert len(rows) == len(SAMPLE_TEMPLATES)
    authenticated = shell_json(
        env,
        "import json; from django.contrib.auth import authenticate; "
        "print(json.dumps(authenticate(username='admin', password='admin') is not None))",
    )
    assert authenticated is True


def test_demo_setup_takes_the_login_from_the_environment(tmp_path: Path, migrated: Path) -> None:
    db_path = migrated_copy(migrated, tmp_path)
    env = project_env(db_path)
    manage_ok(env, "demo_setup")

    custom = {**env, "DEMO_ADMIN_USERNAME": "operator", "DEMO_ADMIN_PASSWORD": "s3cret-Pass"}
    output = manage_ok(custom, "demo_setup")
    # Run again with another password: the password is put back to the configured one.
    manage_ok({**custom, "DEMO_ADMIN_PASSWORD": "changed"}, "demo_setup")
    output_again = manage_ok(custom, "demo_setup")

    assert "username: operator" in output
    assert "password: s3cret-Pass" in output
    assert "Superuser operator: updated." in output_again
    logins = shell_json(
        custom,
        "import json; from django.contrib.auth import authenticate; print(json.dumps(["
        "authenticate(username='operator', password='s3cret-Pass') is not None, "
        "authenticate(username='operator', password='changed') is not None]))",
    )
    assert logins == [True, False]


def test_checks_pass_and_migrations_are_complete(tmp_path: Path) -> None:
    env = project_env(tmp_path / "demo.sqlite3")

    assert "no issues" in manage_ok(env, "check")
    manage_ok(env, "makemigrations", "--check", "--dry-run")


SETTINGS_PROBE = (
    "import json\n"
    "from django.conf import settings\n"
    "from django.urls import NoReverseMatch, reverse\n"
    "try:\n"
    "    sandbox_url = reverse('django_whatsapp_sandbox:send')\n"
    "except NoReverseMatch:\n"
    "    sandbox_url = None\n"
    "from django_whatsapp.conf import get_settings\n"
    "conf = get_settings()\n"
    "print(json.dumps({'sandbox': settings.WHATSAPP_SANDBOX, 'api_key': conf.API_KEY, "
    "'base_url': conf.BASE_URL, 'callback': conf.CALLBACK_BASE_URL, "
    "'secrets': list(conf.CALLBACK_SECRETS), 'source': conf.DEFAULT_SOURCE_ADDR, "
    "'delay': conf.SANDBOX_CALLBACK_DELAY, 'sandbox_url': sandbox_url, "
    "'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS, "
    "'db': settings.DATABASES['default']['NAME']}))"
)


def test_without_a_key_the_project_uses_its_own_sandbox(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.sqlite3"
    env = project_env(db_path, WHATSAPP_CALLBACK_BASE_URL="http://127.0.0.1:8123/")

    probe = shell_json(env, SETTINGS_PROBE)

    assert probe["sandbox"] is True
    assert probe["api_key"]
    assert probe["base_url"] == "http://127.0.0.1:8123/sandbox/v1/api"
    assert probe["callback"] == "http://127.0.0.1:8123"
    assert probe["sandbox_url"] == "/sandbox/v1/api/send-whatsapp"
    assert probe["secrets"] == ["example-project-tests-callback-secret"]
    assert probe["source"] == "DemoShop"
    assert probe["delay"] == 0.1
    assert probe["db"] == str(db_path)


def test_with_a_key_the_project_uses_the_gateway_and_hides_the_sandbox(tmp_path: Path) -> None:
    env = project_env(
        tmp_path / "demo.sqlite3",
        WHATSAPP_API_KEY="live-key",
        WHATSAPP_BASE_URL="https://gateway.example.com/v1/api",
        WHATSAPP_SOURCE_ADDR="Acme",
        WHATSAPP_CALLBACK_SECRET="new-secret,old-secret",
        DJANGO_DEBUG="False",
        DJANGO_ALLOWED_HOSTS="shop.example.com",
    )

    probe = shell_json(env, SETTINGS_PROBE)

    assert probe["sandbox"] is False
    assert probe["api_key"] == "live-key"
    assert probe["base_url"] == "https://gateway.example.com/v1/api"
    assert probe["sandbox_url"] is None
    assert probe["secrets"] == ["new-secret", "old-secret"]
    assert probe["source"] == "Acme"
    assert probe["debug"] is False
    assert probe["hosts"] == ["shop.example.com"]


def test_with_a_key_and_no_base_url_the_project_uses_the_real_gateway(tmp_path: Path) -> None:
    env = project_env(tmp_path / "demo.sqlite3", WHATSAPP_API_KEY="live-key")

    probe = shell_json(env, SETTINGS_PROBE)

    assert probe["base_url"] == "https://web.it-decision.com/v1/api"


# -- end to end ----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    env: dict[str, str]
    db_path: Path
    log_path: Path

    def message(self, pk: int) -> dict[str, Any]:
        rows = query(
            self.db_path,
            "SELECT status, error_code, error_name, provider_message_id "
            "FROM django_whatsapp_message WHERE id = ?",
            pk,
        )
        assert rows, f"no message {pk}"
        status, error_code, error_name, provider_id = rows[0]
        return {
            "status": status,
            "error_code": error_code,
            "error_name": error_name,
            "provider_message_id": provider_id,
        }

    def events(self, pk: int) -> list[tuple[str, str]]:
        return query(
            self.db_path,
            "SELECT status, source FROM django_whatsapp_statusevent WHERE message_id = ? "
            "ORDER BY id",
            pk,
        )

    def wait_for_status(self, pk: int, status: str) -> None:
        wait_for(lambda: self.message(pk)["status"] == status, f"message {pk} to be {status}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> Iterator[Server]:
    """``make demo`` in small: migrate (the module's migrated database), demo_setup, then
    runserver on a free port."""
    tmp = tmp_path_factory.mktemp("example_project")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = project_env(migrated_copy(migrated, tmp), WHATSAPP_CALLBACK_BASE_URL=url)
    manage_ok(env, "demo_setup")
    log_path = tmp / "runserver.log"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=EXAMPLE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Server(url=url, env=env, db_path=tmp / "demo.sqlite3", log_path=log_path)
    try:

        def answers() -> bool:
            assert process.poll() is None, f"runserver exited:\n{running.log()}"
            try:
                requests.get(f"{url}/", timeout=REQUEST_TIMEOUT, allow_redirects=False)
            except requests.RequestException:
                return False
            return True

        wait_for(answers, f"runserver on port {port}")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def sent_pk(output: str) -> int:
    match = re.search(r"Message (\d+) to \+", output)
    assert match, output
    return int(match.group(1))


def test_root_redirects_to_the_admin_and_the_printed_login_works(server: Server) -> None:
    root = requests.get(f"{server.url}/", timeout=REQUEST_TIMEOUT, allow_redirects=False)
    assert root.status_code == 302
    assert root.headers["Location"] == "/admin/"

    with requests.Session() as browser:
        login_page = browser.get(f"{server.url}/admin/login/", timeout=REQUEST_TIMEOUT)
        assert login_page.status_code == 200
        answer = browser.post(
            f"{server.url}/admin/login/?next=/admin/",
            data={
                "username": "admin",
                "password": "admin",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "next": "/admin/",
            },
            headers={"Referer": f"{server.url}/admin/login/"},
            timeout=REQUEST_TIMEOUT,
        )
        assert answer.status_code == 200
        assert answer.url == f"{server.url}/admin/"
        templates = browser.get(
            f"{server.url}/admin/django_whatsapp/template/", timeout=REQUEST_TIMEOUT
        )
    assert templates.status_code == 200
    assert "appointment_reminder" in templates.text


def test_a_text_message_goes_through_the_sandbox_and_is_seen_by_callbacks(server: Server) -> None:
    result = manage(server.env, "whatsapp_send", "--to", "+380631234567", "--text", "hi")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "accepted" in result.stdout
    pk = sent_pk(result.stdout)
    server.wait_for_status(pk, "seen")
    assert server.message(pk)["provider_message_id"] is not None
    events = server.events(pk)
    assert ("accepted", "send") in events
    assert [event for event in events if event[1] == "callback"] == [
        ("sent", "callback"),
        ("delivered", "callback"),
        ("seen", "callback"),
    ]
    assert "Traceback" not in server.log()


def test_a_seeded_template_goes_through_the_sandbox(server: Server) -> None:
    result = manage(
        server.env,
        "whatsapp_send",
        "--to",
        "+380 63 123 4568",
        "--template",
        "appointment_reminder",
        "--header",
        "Dental clinic",
        "--param",
        "Olena",
        "--param",
        "12 May",
        "--param",
        "10:30",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    pk = sent_pk(result.stdout)
    server.wait_for_status(pk, "seen")


def test_a_sandbox_failure_number_ends_not_sent_with_the_error_kept(server: Server) -> None:
    result = manage(server.env, "whatsapp_send", "--to", "+380630000002", "--text", "hi")

    assert result.returncode != 0
    assert "Topup balance is required" in result.stderr
    pk = sent_pk(result.stderr)
    message = server.message(pk)
    assert message["status"] == "not_sent"
    assert message["error_name"] == "Topup balance is required"
    assert message["error_code"] == 3
    assert message["provider_message_id"] is None
    assert server.events(pk) == [("not_sent", "send")]
