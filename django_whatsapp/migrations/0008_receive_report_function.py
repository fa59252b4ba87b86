"""PostgreSQL only: the status callback's work as a function, ``django_whatsapp_receive_report``.

A callback finds its message by UUID, locks it, records the report (unless it is an exact
duplicate, which the partial unique index turns away) and raises the status only from a lower
rank. As one SQL statement PostgreSQL had to plan it for every callback, and planning cost more
than running it. Inside a PL/pgSQL function its statements are planned once per connection,
with or without prepared statements in the project's ``DATABASES`` (Django leaves them off),
and behind any connection pooler. ``status_rule.receive_report_by_uuid`` calls it. Its text is
``django_whatsapp.fastpaths.by_uuid.CREATE``, beside the rule it must equal.

It returns the message row as it was under the lock (before the report), the new event's id
(``NULL`` for a duplicate, or when the report names another provider id than the message's and
so was not applied) and whether the status rose; no row when no message has the UUID.

On other databases this migration does nothing: they apply a report in a transaction.
"""

from typing import Any

from django.db import migrations

# The function's text lives beside the rule it must equal (one text); a change to it needs a
# migration of its own, and this one then keeps the old text (tests/test_fastpaths.py pins it).
from django_whatsapp.fastpaths.by_uuid import CREATE, DROP, FUNCTION


def _tables(apps: Any, schema_editor: Any) -> dict[str, str]:
    quote = schema_editor.quote_name
    return {
        "function": FUNCTION,
        "message": quote(apps.get_model("django_whatsapp", "Message")._meta.db_table),
        "event": quote(apps.get_model("django_whatsapp", "StatusEvent")._meta.db_table),
    }


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE.format(**_tables(apps, schema_editor)))


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP.format(**_tables(apps, schema_editor)))


class Migration(migrations.Migration):
    dependencies = [("django_whatsapp", "0007_message_lean_indexes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
