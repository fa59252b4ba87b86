"""Bulk send of 2,000 text messages to a gateway that adds 20 ms per request.

Against the naive baseline (sequential ``requests.post``, a new connection each time: what a
loop over the API without this package does) and against the limit that the concurrency and the
latency set (``concurrency / latency`` messages per second). Run at the default concurrency, 8,
and at 16: at 8 the limit itself (400/s) is under ten times the naive rate (at most 50/s).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import requests
from django.conf import settings

from .harness import Figure, gateway

COUNT = 2000
BASELINE_COUNT = 150  # a throughput: measured on fewer requests, it is the same rate
CONCURRENCIES = (8, 16)
LATENCY = 0.020


def naive(base_url: str, count: int) -> float:
    """Messages per second, one ``requests.post`` after the other, each on a new connection."""
    conf: dict[str, Any] = settings.DJANGO_WHATSAPP
    headers = {
        "Authorization": "Basic " + base64.b64encode(conf["API_KEY"].encode()).decode(),
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    for n in range(count):
        body = {
            "source_addr": "TestCo",
            "destination_addr": 380500000000 + n,
            "message_type": 1,
            "text": "Spring sale: 20% off",
        }
        answer = requests.post(
            f"{base_url}/send-whatsapp", data=json.dumps(body), headers=headers, timeout=10
        )
        answer.raise_for_status()
    return count / (time.perf_counter() - started)


def run() -> list[Figure]:
    from django_whatsapp import bulk
    from django_whatsapp.models import Message, StatusEvent

    figures: list[Figure] = []
    with gateway(LATENCY) as base_url:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": base_url}
        baseline = naive(base_url, BASELINE_COUNT)
        print(f"bulk: naive sequential requests.post {baseline:.1f}/s")
        figures.append(
            Figure("bulk", "naive sequential requests.post, msg/s", baseline, "msg/s", "", None)
        )
        for concurrency in CONCURRENCIES:
            StatusEvent.objects.all().delete()
            Message.objects.all().delete()
            recipients = [f"+{380500000000 + n}" for n in range(COUNT)]
            started = time.perf_counter()
            result = bulk.send_bulk(
                recipients, text="Spring sale: 20% off", concurrency=concurrency
            )
            elapsed = time.perf_counter() - started
            assert result.counts == {"accepted": COUNT}, result.counts
            assert Message.objects.filter(status="accepted").count() == COUNT
            rate = COUNT / elapsed
            limit = concurrency / LATENCY
            print(
                f"bulk: {COUNT} messages, concurrency {concurrency}: {elapsed:.2f}s = {rate:.0f}/s"
                f" (limit {limit:.0f}/s)"
            )
            name = f"concurrency {concurrency}"
            figures += [
                Figure("bulk", f"{name}: bulk send, msg/s", rate, "msg/s", "", None),
                Figure(
                    "bulk",
                    f"{name}: bulk / naive",
                    rate / baseline,
                    "x",
                    ">= 10",
                    rate / baseline >= 10,
                ),
                Figure(
                    "bulk",
                    f"{name}: bulk / limit (concurrency/latency)",
                    rate / limit,
                    "",
                    ">= 0.8",
                    rate / limit >= 0.8,
                ),
            ]
    return figures
