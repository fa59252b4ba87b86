"""The admin as the table grows from 1,000 to 100,000 messages (each with a status event): the
message list (plain and filtered), one message's page and one conversation. The number of SQL
queries per page (goal: the same at every size), and the CPU and time per page, through Django's
test client logged in as a superuser."""

from __future__ import annotations

import itertools
import os
import time

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from .harness import Figure, own_cpu

#: ``BENCH_ADMIN_SIZES=1000,10000`` for a shorter run.
SIZES = tuple(int(n) for n in os.environ.get("BENCH_ADMIN_SIZES", "1000,10000,100000").split(","))
#: The status events of the message whose page is measured (besides one per message).
EVENTS = 30
#: The messages in the conversation that is measured.
THREAD = 40
#: Pages fetched per measurement (the CPU and time are their mean).
REPEAT = 3
CUSTOMER = "380509999999"
STATUSES = ("accepted", "sent", "delivered", "seen", "not_sent", "failed")


def grow_to(size: int, user: object) -> None:
    from django_whatsapp.models import Message, StatusEvent, Template

    templates = list(Template.objects.all())
    have = Message.objects.count()
    kinds = itertools.cycle(["text", "media", "template"])
    new = []
    for n in range(have, size):  # the thread's messages count too
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


def measure(client: Client, url: str) -> tuple[int, float, float]:
    """(queries, CPU ms, wall ms) of one page, after a warm-up; the means of ``REPEAT`` gets."""
    client.get(url)  # warm
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    count = len(queries)  # now: the next request's start empties the log
    cpu, started = own_cpu(), time.perf_counter()
    for _ in range(REPEAT):
        client.get(url)
    elapsed = (time.perf_counter() - started) * 1000 / REPEAT
    return count, (own_cpu() - cpu) * 1000 / REPEAT, elapsed


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
    thread = Message.objects.bulk_create(
        Message(
            source_addr="TestCo",
            destination_addr=CUSTOMER,
            text=f"Message {n} of the thread",
            status="delivered",
            direction="inbound" if n % 3 == 0 else "outbound",
            provider_message_id=None if n % 3 == 0 else 8_000_000 + n,
        )
        for n in range(THREAD)
    )
    viewed = thread[1]
    StatusEvent.objects.bulk_create(
        StatusEvent(message=viewed, status=STATUSES[n % len(STATUSES)], source="admin")
        for n in range(EVENTS)
    )
    pages = {
        "list": "/admin/django_whatsapp/message/",
        "list filtered by status": "/admin/django_whatsapp/message/?status__exact=delivered",
        "a message's page": reverse("admin:django_whatsapp_message_change", args=[viewed.pk]),
        "a conversation": reverse("admin:django_whatsapp_conversation_thread", args=[CUSTOMER]),
    }
    counts: dict[tuple[str, int], int] = {}
    figures = []
    for size in SIZES:
        grow_to(size, user)
        for label, url in pages.items():
            queries, cpu, elapsed = measure(client, url)
            counts[label, size] = queries
            print(
                f"admin: {label}, {size} messages: {queries} queries, CPU {cpu:.0f} ms, "
                f"{elapsed:.0f} ms"
            )
            figures.append(
                Figure("admin", f"{label}, {size:,} messages: queries", queries, "", "", None)
            )
            figures.append(Figure("admin", f"{label}, {size:,} messages: CPU", cpu, "ms", "", None))
    for label in pages:
        same = len({counts[label, size] for size in SIZES}) == 1
        figures.append(
            Figure(
                "admin",
                f"{label}: queries at {SIZES[-1]:,} minus at {SIZES[0]:,}",
                counts[label, SIZES[-1]] - counts[label, SIZES[0]],
                "queries",
                "0 (constant)",
                same,
            )
        )
    return figures
