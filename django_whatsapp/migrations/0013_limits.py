"""WhatsApp's own limits: a message's and a campaign's expiry (``expires_at``), the time before
which a message is not claimed (``Message.send_after``: its recipient's sending hours, or the
daily limit), a campaign's sending hours in the recipient's own time, and the time a waiting
chunk is handed out again (``CampaignChunk.not_before``). Nullable columns only: nothing is
rewritten."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_whatsapp", "0012_consent_history"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="expires"),
        ),
        migrations.AddField(
            model_name="campaign",
            name="sending_hours_end",
            field=models.TimeField(blank=True, null=True, verbose_name="sending hours until"),
        ),
        migrations.AddField(
            model_name="campaign",
            name="sending_hours_start",
            field=models.TimeField(blank=True, null=True, verbose_name="sending hours from"),
        ),
        migrations.AddField(
            model_name="campaignchunk",
            name="not_before",
            field=models.DateTimeField(blank=True, null=True, verbose_name="not before"),
        ),
        migrations.AddField(
            model_name="message",
            name="expires_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="Not requested by then, the message is not sent at all (never late).",
                null=True,
                verbose_name="expires",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="send_after",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="not before"
            ),
        ),
    ]
