"""The lifecycle benchmark's child processes (``python -m benchmarks.lifecycle_children
COMMAND ...``): ``prepare COUNT`` makes the campaign, ``start CAMPAIGN`` starts it, and
``bare-sender COUNT OFFSET BASE_URL CALLBACK_BASE`` is one of the bare baseline's senders."""

from __future__ import annotations

import json
import sys

from .lifecycle import SENDER_THREADS, TEXT


def prepare(count: int) -> None:
    """The campaign (``draft``), and what the runner needs: its id and the inbound URL."""
    import django

    django.setup()
    from django_whatsapp import services
    from django_whatsapp.inbound import inbound_url

    numbers = (f"+{380500000000 + n}" for n in range(count))
    campaign = services.create_campaign("Lifecycle", numbers, text=TEXT)
    assert campaign.recipients_count == count, campaign.recipients_count
    print(json.dumps({"campaign": campaign.pk, "inbound_url": inbound_url()}))


def start(campaign_id: int) -> None:
    import django

    django.setup()
    from django_whatsapp import services
    from django_whatsapp.models import Campaign

    services.start_campaign(Campaign.objects.get(pk=campaign_id))


def bare_sender(count: int, offset: int, base_url: str, callback_base: str) -> None:
    """Post ``count`` sends from ``SENDER_THREADS`` threads over one pooled session, each with
    a callback URL of the bare receiver: the least a sender does (no database, no Django).
    Prints ``ready``, sends on ``go``, prints ``done``, exits when its input closes."""
    import base64
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=SENDER_THREADS))
    session.trust_env = False
    headers = {
        "Authorization": "Basic " + base64.b64encode(b"test-api-key-9f8e7d").decode(),
        "Content-Type": "application/json",
    }

    def send(n: int) -> None:
        body = {
            "source_addr": "TestCo",
            "destination_addr": 380500000000 + n,
            "message_type": 1,
            "text": TEXT,
            "callback_url": f"{callback_base}/bare/callback/{n}/",
        }
        answer = session.post(
            f"{base_url}/send-whatsapp", data=json.dumps(body), headers=headers, timeout=30
        )
        answer.raise_for_status()
        answer.json()

    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    with ThreadPoolExecutor(max_workers=SENDER_THREADS) as pool:
        list(pool.map(send, range(offset, offset + count)))
    print("done", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "prepare":
        prepare(int(args[0]))
    elif command == "start":
        start(int(args[0]))
    elif command == "bare-sender":
        bare_sender(int(args[0]), int(args[1]), args[2], args[3])
    else:
        raise SystemExit(f"unknown command {command!r}")
