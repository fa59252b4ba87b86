"""PostgreSQL only: the status callback's work as a function, ``django_whatsapp_receive_report``.

A callback finds its message by UUID, locks it, records the report (unless it is an exact
duplicate, which the partial unique index turns away) and raises the status only from a lower
rank. As one SQL statement PostgreSQL had to plan it for every callback, and planning cost more
than running it. Inside a PL/pgSQL function its statements are planned once per connection,
with or without prepared statements in the project's ``DATABASES`` (Django leaves them off),
and behind any connection pooler. ``status_rule.receive_report_by_uuid`` calls it.

It returns the message row as it was under the lock (before the report), the new event's id
(``NULL`` for a duplicate, or when the report names another provider id than the message's and
so was not applied) and whether the status rose; no row when no message has the UUID.

On other databases this migration does nothing: they apply a report in a transaction.
"""

from typing import Any

from django.db import migrations

FUNCTION = "django_whatsapp_receive_report"

CREATE = """
CREATE OR REPLACE FUNCTION {function}(
    p_uuid uuid,
    p_status text,
    p_code integer,
    p_source text,
    p_payload jsonb,
    p_now timestamptz,
    p_lower text[],
    p_provider_message_id bigint
) RETURNS TABLE (message {message}, event_id bigint, changed boolean)
LANGUAGE plpgsql
AS $body$
#variable_conflict use_column
DECLARE
    cur {message};
BEGIN
    SELECT * INTO cur FROM {message} WHERE uuid = p_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    message := cur;
    event_id := NULL;
    changed := FALSE;
    IF p_provider_message_id IS NULL OR cur.provider_message_id = p_provider_message_id THEN
        INSERT INTO {event} (message_id, status, provider_status, source, payload, received_at)
        VALUES (cur.id, p_status, p_code, p_source, p_payload, p_now)
        ON CONFLICT DO NOTHING
        RETURNING id INTO event_id;
        IF event_id IS NOT NULL AND cur.status = ANY (p_lower) THEN
            UPDATE {message} SET status = p_status, status_changed_at = p_now
            WHERE id = cur.id;
            changed := TRUE;
        END IF;
    END IF;
    RETURN NEXT;
END
$body$
"""

DROP = (
    "DROP FUNCTION IF EXISTS {function}(uuid, text, integer, text, jsonb, timestamptz, text[], "
    "bigint)"
)


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
