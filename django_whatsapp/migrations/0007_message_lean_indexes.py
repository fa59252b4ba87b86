"""Fewer indexes on the message table: every status change (a callback, a poll, a send's
result) rewrites the row, and PostgreSQL writes a new entry into every index of the table when
an indexed column (the status) changes.

- ``status``, ``direction`` and ``account`` keep one plain B-tree each, now named in
  ``Message.Meta.indexes``. On PostgreSQL ``db_index=True`` on a CharField had also made a
  ``varchar_pattern_ops`` index for ``LIKE``, which no query here asks: those three go.
- ``destination_addr`` loses its own two indexes: ``django_whatsapp_thread``
  (``destination_addr, created_at``) leads with it and serves every lookup by number.
- ``target_content_type`` loses its own index: ``django_whatsapp_target`` leads with it.

The existing indexes are renamed, not built again, and the foreign key is left alone, so the
migration takes no longer on a table of millions of rows than on an empty one.
"""

import copy
from typing import Any

from django.db import migrations, models

#: The fields whose automatic index is renamed to a named one (and whose LIKE index goes).
RENAMED = {
    "status": "django_whatsapp_status",
    "direction": "django_whatsapp_direction",
    "account": "django_whatsapp_account",
}
#: The fields whose own indexes go (a composite index leads with each).
DROPPED = ("destination_addr", "target_content_type")


def _own_indexes(schema_editor: Any, model: Any, column: str) -> list[str]:
    """The names of the indexes on ``column`` alone that are not unique (Django's automatic
    ones, and on PostgreSQL their ``_like`` companions)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return sorted(
        name
        for name, info in constraints.items()
        if info["columns"] == [column]
        and info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and not info["foreign_key"]
    )


def forwards(apps: Any, schema_editor: Any) -> None:
    message = apps.get_model("django_whatsapp", "Message")
    for field, new_name in RENAMED.items():
        names = _own_indexes(schema_editor, message, message._meta.get_field(field).column)
        for name in names:
            if name.endswith("_like"):
                schema_editor.remove_index(message, models.Index(fields=[field], name=name))
        if new_name in names:
            continue
        plain = [name for name in names if not name.endswith("_like")]
        if plain:
            schema_editor.rename_index(
                message,
                models.Index(fields=[field], name=plain[0]),
                models.Index(fields=[field], name=new_name),
            )
        else:  # someone dropped it by hand: build it
            schema_editor.add_index(message, models.Index(fields=[field], name=new_name))
    for field in DROPPED:
        column = message._meta.get_field(field).column
        for name in _own_indexes(schema_editor, message, column):
            schema_editor.remove_index(message, models.Index(fields=[field], name=name))


def backwards(apps: Any, schema_editor: Any) -> None:
    """Django's automatic indexes again (``db_index=True``), the LIKE ones included."""
    message = apps.get_model("django_whatsapp", "Message")
    for field in (*RENAMED, *DROPPED):
        current = message._meta.get_field(field)
        column = current.column
        for name in _own_indexes(schema_editor, message, column):
            schema_editor.remove_index(message, models.Index(fields=[field], name=name))
        plain, indexed = copy.copy(current), copy.copy(current)  # bound, relations resolved
        plain.db_index, indexed.db_index = False, True
        schema_editor.alter_field(message, plain, indexed)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_whatsapp", "0006_campaign_account"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="account",
                    field=models.CharField(
                        default="default",
                        help_text=(
                            "The WhatsApp account (DJANGO_WHATSAPP['ACCOUNTS']) this message "
                            "goes through."
                        ),
                        max_length=64,
                        verbose_name="account",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="destination_addr",
                    field=models.CharField(max_length=20, verbose_name="recipient"),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="direction",
                    field=models.CharField(
                        choices=[("outbound", "Sent"), ("inbound", "Received")],
                        default="outbound",
                        max_length=8,
                        verbose_name="direction",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("draft", "Draft"),
                            ("queued", "Queued"),
                            ("sending", "Sending"),
                            ("unknown", "Unknown"),
                            ("accepted", "Accepted"),
                            ("pending", "Pending"),
                            ("sent", "Sent"),
                            ("delivered", "Delivered"),
                            ("seen", "Seen"),
                            ("not_sent", "Not sent"),
                            ("rejected", "Rejected"),
                            ("error", "Error"),
                            ("failed", "Failed"),
                            ("deleted", "Deleted"),
                        ],
                        default="draft",
                        max_length=16,
                        verbose_name="status",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="target_content_type",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="+",
                        to="contenttypes.contenttype",
                        verbose_name="target type",
                    ),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["status"], name="django_whatsapp_status"),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["direction"], name="django_whatsapp_direction"),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["account"], name="django_whatsapp_account"),
                ),
            ],
        )
    ]
