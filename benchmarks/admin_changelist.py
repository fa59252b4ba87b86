"""The admin's message list as the table grows from 100 to 10,000 messages: the number of SQL
queries for one page (goal: the same at every size), through Django's test client logged in as a
superuser. The time per page is shown for information."""

from __future__ import annotations

import itertools
import time

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from .harness import Figure

SIZES = (100, 1_000, 10_000)
URLS = (
    "/admin/django_whatsapp/message/",
    "/admin/django_whatsapp/message/?status__exact=delivered",
)
STATUSES = ("accepted", "sent", "delivered", "seen", "not_sent", "failed")


def grow_to(size: int, user: object) -> None:
    from django_whatsapp.models import Message, StatusEvent, Template

    templates = list(Template.objects.all())
    have = Message.objects.count()
    kinds = itertools.cycle(["text", "media", "template"])
    new = []
    for n in range(have, size):
        kind = next(kinds)
        message = Message(
            source_addr="TestCo",
            destination_addr=str(380500000000 + n),
            status=STATUSES[n % len(STATUSES)],
            provider_message_id=9_000_000 + n,
            created_by=user if n % 2 else None,
        )
        if kind == "text":
            message.text = f"Your order {n} has shipped."
        elif kind == "media":
            message.message_type = Message.MessageType.MEDIA
            message.file_url = "https://cdn.example.com/receipt.png"
        else:
            message.message_type = Message.MessageType.TEMPLATE
            message.template = templates[n % len(templates)]
            message.template_params = {"body": ["Ann", str(n)], "header": None}
        new.append(message)
    created = Message.objects.bulk_create(new, batch_size=2000)
    StatusEvent.objects.bulk_create(
        (StatusEvent(message=m, status=m.status, source="callback") for m in created),
        batch_size=2000,
    )


def run() -> list[Figure]:
    from django.contrib.auth import get_user_model

    from django_whatsapp.models import Message, StatusEvent, Template

    StatusEvent.objects.all().delete()
    Message.objects.all().delete()
    for n in range(5):
        Template.objects.get_or_create(
            name=f"template_{n}",
            language_code="en_US",
            defaults={"namespace": "ns", "body": "Hello {{1}}, order {{2}}."},
        )
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    counts: dict[tuple[str, int], int] = {}
    figures = []
    for size in SIZES:
        grow_to(size, user)
        for url in URLS:
            client.get(url)  # warm
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                answer = client.get(url)
                elapsed = time.perf_counter() - started
            assert answer.status_code == 200, answer.status_code
            counts[url, size] = len(queries)
            label = "list" if "?" not in url else "list filtered by status"
            print(
                f"admin: {label}, {size} messages: {len(queries)} queries, {elapsed * 1000:.0f} ms"
            )
            figures.append(
                Figure(
                    "admin", f"{label}, {size} messages: queries", len(queries), "queries", "", None
                )
            )
            figures.append(
                Figure("admin", f"{label}, {size} messages: time", elapsed * 1000, "ms", "", None)
            )
    for url in URLS:
        label = "list" if "?" not in url else "list filtered by status"
        same = len({counts[url, size] for size in SIZES}) == 1
        figures.append(
            Figure(
                "admin",
                f"{label}: queries at 10,000 minus at 100",
                counts[url, SIZES[-1]] - counts[url, SIZES[0]],
                "queries",
                "0 (constant)",
                same,
            )
        )
    return figures
