"""The opt-out history: every opt-out and opt-in kept with what asked for it
(``ConsentChange``). Each contact opted out before this migration gets one entry from what its
row kept (when, why, the customer's message and the inbound report that message came in)."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def from_contacts(apps: Any, schema_editor: Any) -> None:
    using = schema_editor.connection.alias
    Contact = apps.get_model("django_whatsapp", "Contact")
    ConsentChange = apps.get_model("django_whatsapp", "ConsentChange")
    Report = apps.get_model("django_whatsapp", "InboundReport")
    opted_out = Contact.objects.using(using).filter(opted_out_at__isnull=False).order_by("pk")
    batch = []
    for contact in opted_out.iterator():
        report = None
        said = ""
        if contact.opt_out_message_id is not None:
            report = (
                Report.objects.using(using)
                .filter(messages=contact.opt_out_message_id)
                .order_by("pk")
                .first()
            )
            said = contact.opt_out_message.text[:255] if contact.opt_out_message else ""
        batch.append(
            ConsentChange(
                contact=contact,
                kind="opted_out",
                at=contact.opted_out_at,
                reason=contact.opt_out_reason,
                said=said,
                message_id=contact.opt_out_message_id,
                report=report,
            )
        )
        if len(batch) >= 500:
            ConsentChange.objects.using(using).bulk_create(batch)
            batch = []
    ConsentChange.objects.using(using).bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("django_whatsapp", "0011_accounts_apart"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsentChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("opted_out", "Opted out"), ("opted_in", "Opted in")],
                        max_length=16,
                        verbose_name="change",
                    ),
                ),
                ("at", models.DateTimeField(verbose_name="when")),
                ("reason", models.CharField(blank=True, max_length=255, verbose_name="reason")),
                (
                    "said",
                    models.CharField(
                        blank=True,
                        help_text="The customer's words, when a keyword asked for it.",
                        max_length=255,
                        verbose_name="what the customer wrote",
                    ),
                ),
                (
                    "contact",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="consent_changes",
                        to="django_whatsapp.contact",
                        verbose_name="contact",
                    ),
                ),
                (
                    "message",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_whatsapp.message",
                        verbose_name="customer's message",
                    ),
                ),
                (
                    "report",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_whatsapp.inboundreport",
                        verbose_name="inbound report",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="operator",
                    ),
                ),
            ],
            options={
                "verbose_name": "opt-out or opt-in",
                "verbose_name_plural": "opt-out history",
                "ordering": ["-at", "-pk"],
            },
        ),
        migrations.RunPython(from_contacts, migrations.RunPython.noop, elidable=False),
    ]
