"""Migrations 0007 and 0008, the callback's hot path in the schema: the message table's
redundant indexes go (the rest are renamed, not rebuilt, and the migration runs backwards), and
PostgreSQL gets the callback's function (and a callback before it exists still applies)."""

from __future__ import annotations

from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from django_whatsapp.models import Message
from django_whatsapp.signing import callback_url
from tests.factories import make_message

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("django_whatsapp", "0006_campaign_account")
AFTER = ("django_whatsapp", "0007_message_lean_indexes")


def indexes() -> dict[str, dict[str, Any]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, Message._meta.db_table)
    return {name: info for name, info in found.items() if info["index"]}


def single_column(column: str) -> list[str]:
    return sorted(
        name
        for name, info in indexes().items()
        if info["columns"] == [column] and not info["unique"] and not info["primary_key"]
    )


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def migrate_to_the_latest() -> None:
    """Back to where the rest of the suite runs: every migration of the app applied."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("django_whatsapp"))


def test_the_redundant_indexes_go_and_the_others_are_renamed() -> None:
    postgres = connection.vendor == "postgresql"
    try:
        migrate(BEFORE)
        before = {
            column: single_column(column)
            for column in ("status", "direction", "account", "destination_addr")
        }
        # Django's db_index=True: one index, and a LIKE one beside it on PostgreSQL.
        for column, names in before.items():
            assert len(names) == (2 if postgres else 1), (column, names)
        assert len(single_column("target_content_type_id")) == 1
        count_before = len(indexes())
        # The plain index's own object: renamed keeps it (PostgreSQL's OID stays).
        oid = None
        if postgres:
            plain = next(name for name in before["status"] if not name.endswith("_like"))
            with connection.cursor() as cursor:
                cursor.execute("SELECT %s::regclass::oid", [plain])
                oid = cursor.fetchone()[0]

        migrate(AFTER)

        assert single_column("status") == ["django_whatsapp_status"]
        assert single_column("direction") == ["django_whatsapp_direction"]
        assert single_column("account") == ["django_whatsapp_account"]
        assert single_column("destination_addr") == []
        assert single_column("target_content_type_id") == []
        after = indexes()
        assert after["django_whatsapp_thread"]["columns"] == ["destination_addr", "created_at"]
        assert after["django_whatsapp_target"]["columns"][0] == "target_content_type_id"
        # Two dropped everywhere; on PostgreSQL also destination_addr's and three LIKE ones.
        assert len(after) == count_before - (6 if postgres else 2)
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 'django_whatsapp_status'::regclass::oid")
                assert cursor.fetchone()[0] == oid

        migrate(BEFORE)

        for column, names in before.items():
            assert len(single_column(column)) == len(names), column
        assert len(single_column("target_content_type_id")) == 1
        assert len(indexes()) == count_before
    finally:
        migrate_to_the_latest()
    assert single_column("status") == ["django_whatsapp_status"]


def test_an_index_dropped_by_hand_is_built_again() -> None:
    """A project that dropped the status index itself still ends with the named one."""
    try:
        migrate(BEFORE)
        with connection.schema_editor() as editor:
            for name in single_column("status"):
                editor.execute(editor.sql_delete_index % {"name": editor.quote_name(name)})
        assert single_column("status") == []

        migrate(AFTER)

        assert single_column("status") == ["django_whatsapp_status"]
    finally:
        migrate_to_the_latest()


def function_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = %s)",
            ["django_whatsapp_receive_report"],
        )
        return bool(cursor.fetchone()[0])


def test_the_callback_function_comes_and_goes_with_its_migration() -> None:
    """Migration 0008 creates the callback's function on PostgreSQL (and nothing elsewhere);
    unapplied, it drops it."""
    if connection.vendor != "postgresql":
        pytest.skip("the function is PostgreSQL's; elsewhere 0008 does nothing")
    assert function_exists()
    try:
        migrate(AFTER)
        assert not function_exists()
    finally:
        migrate_to_the_latest()
    assert function_exists()


#: Migration 0008, whose operations create and drop the function.
FUNCTION_MIGRATION = import_module("django_whatsapp.migrations.0008_receive_report_function")


def test_a_callback_before_the_function_exists_is_applied_the_long_way(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """New code deployed before ``migrate``: the function is missing, and a callback is still
    applied (found, recorded, raised), not answered 503 until the migration runs. The function
    is dropped as unapplying 0008 does, alone (unapplying 0008 itself would also take the later
    migrations' columns, which the code of this version reads)."""
    if connection.vendor != "postgresql":
        pytest.skip("the function is PostgreSQL's; elsewhere the long way is the only way")
    message = make_message()
    url = callback_url(message.uuid)
    assert url is not None
    path = urlsplit(url).path
    try:
        with connection.schema_editor() as editor:
            FUNCTION_MIGRATION.drop(apps, editor)
        assert not function_exists()
        answers = [
            client.post(path, '{"status": "delivered"}', content_type="application/json")
            for _ in range(2)
        ]
    finally:
        with connection.schema_editor() as editor:
            FUNCTION_MIGRATION.create(apps, editor)

    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == {"ok": True, "status": "delivered", "applied": 1, "duplicates": 0}
    assert answers[1].json() == {"ok": True, "status": "delivered", "applied": 0, "duplicates": 1}
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.events.count() == 1
    assert "no django_whatsapp_receive_report function" in caplog.text
