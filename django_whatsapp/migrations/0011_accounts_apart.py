"""Accounts apart: a provider message id, and an idempotency key, is unique per account.

Two accounts' gateways number their messages each on their own, so account b may be given an id
that the default account's message already has; and the same idempotency key under another
account is another send. The unique index on each column alone gives way to one on
(account, column). Every existing row meets the new constraints (they are looser), so nothing is
changed or lost; backwards, the old indexes come back (failing if two accounts share an id or a
key by then).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_whatsapp", "0010_normalise_numbers")]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="provider_message_id",
            field=models.BigIntegerField(blank=True, null=True, verbose_name="provider message id"),
        ),
        migrations.AlterField(
            model_name="message",
            name="idempotency_key",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="The caller's key: a second send with the same key sends nothing.",
                max_length=255,
                null=True,
                verbose_name="idempotency key",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                fields=("account", "provider_message_id"),
                name="django_whatsapp_account_provider_id",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                fields=("account", "idempotency_key"), name="django_whatsapp_account_idempotency"
            ),
        ),
    ]
