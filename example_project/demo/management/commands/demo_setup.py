"""Prepare the demo: a superuser to log in with and a few sample templates. Safe to run again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from django_whatsapp.models import Template

NAMESPACE = "demo_shop_ns"

#: Keyed by (name, language_code), the unique pair; the rest are the fields of a new template.
SAMPLE_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "order_ready",
        "language_code": "en_US",
        "header_type": Template.HeaderType.IMAGE,
        "body": "Hello {{1}}, your order {{2}} is ready for pickup.",
    },
    {
        "name": "order_ready",
        "language_code": "uk",
        "header_type": Template.HeaderType.IMAGE,
        "body": "Вітаємо, {{1}}! Ваше замовлення {{2}} готове до видачі.",
    },
    {
        "name": "appointment_reminder",
        "language_code": "en_US",
        "header_type": Template.HeaderType.TEXT,
        "body": "Hi {{1}}, this is a reminder of your appointment on {{2}} at {{3}}.",
    },
    {
        "name": "welcome",
        "language_code": "en_US",
        "header_type": Template.HeaderType.NONE,
        "body": "Welcome to DemoShop! Reply to this message if you have any questions.",
    },
]


class Command(BaseCommand):
    help = (
        "Create the demo superuser (DEMO_ADMIN_USERNAME / DEMO_ADMIN_PASSWORD, admin / admin by "
        "default) and the sample templates, then print how to log in. Running it again changes "
        "nothing but the superuser's password, back to the configured one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username = settings.DEMO_ADMIN_USERNAME
        password = settings.DEMO_ADMIN_PASSWORD
        if not username or not password:
            raise CommandError("DEMO_ADMIN_USERNAME and DEMO_ADMIN_PASSWORD cannot be empty.")
        self.setup_superuser(username, password)
        self.seed_templates()
        gateway = (
            "the sandbox gateway on this server (no WHATSAPP_API_KEY)"
            if settings.WHATSAPP_SANDBOX
            else settings.DJANGO_WHATSAPP["BASE_URL"]
        )
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("The demo is ready. Log in at:"))
        self.stdout.write(f"  URL:      {settings.SITE_URL}/admin/")
        self.stdout.write(f"  username: {username}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write(f"Messages go to {gateway}.")

    def setup_superuser(self, username: str, password: str) -> None:
        user_model = get_user_model()
        lookup = {user_model.USERNAME_FIELD: username}
        user = user_model._default_manager.filter(**lookup).first()
        created = user is None
        if user is None:
            user = user_model(**lookup)
        changed = created or not (user.is_active and user.is_staff and user.is_superuser)
        user.is_active = user.is_staff = user.is_superuser = True
        if created or not user.check_password(password):
            user.set_password(password)
            changed = True
        if changed:
            user.save()
        state = "created" if created else ("updated" if changed else "already there")
        self.stdout.write(f"Superuser {username}: {state}.")

    def seed_templates(self) -> None:
        created_count = 0
        for sample in SAMPLE_TEMPLATES:
            fields = dict(sample)
            name, language_code = fields.pop("name"), fields.pop("language_code")
            _template, created = Template.objects.get_or_create(
                name=name,
                language_code=language_code,
                defaults={"namespace": NAMESPACE, **fields},
            )
            created_count += created
        self.stdout.write(
            f"Sample templates: {created_count} created, "
            f"{len(SAMPLE_TEMPLATES) - created_count} already there."
        )
