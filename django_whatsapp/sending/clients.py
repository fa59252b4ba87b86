"""The gateway clients a send goes through: one per thread and account for single sends
(:func:`get_client`), one shared by many threads for bulk sends and campaigns
(:func:`pooled_client`)."""

from __future__ import annotations

import threading
from typing import Any

from ..client import WhatsAppClient
from ..conf import WhatsAppSettings, get_settings
from ..ratelimit import gate_for

_local = threading.local()


def get_client(
    conf: WhatsAppSettings | None = None, *, account: str | None = None
) -> WhatsAppClient:
    """This thread's client for the current settings of ``conf``'s account (or ``account``'s;
    the default account's when neither is given): one pooled HTTP session each, keyed by the
    account's key, URLs and timeouts."""
    conf = conf or get_settings(account)
    key = (
        conf.account,
        conf.API_KEY,
        conf.send_url,
        conf.status_url,
        conf.TIMEOUT,
        conf.MAX_RETRIES,
        conf.RATE_LIMIT,
        conf.RATE_LIMIT_CACHE,
    )
    clients: dict[tuple[Any, ...], WhatsAppClient] = _local.__dict__.setdefault("clients", {})
    client = clients.get(key)
    if client is None:
        if len(clients) >= 8:
            for old in clients.values():
                old.close()
            clients.clear()
        # With RATE_LIMIT, every request takes its budget from the shared cache first.
        client = clients[key] = WhatsAppClient.from_settings(conf, gate=gate_for(conf))
    return client


def pooled_client(
    concurrency: int, conf: WhatsAppSettings | None = None, **kwargs: Any
) -> WhatsAppClient:
    """A client for many threads with at most ``concurrency`` requests in flight: one HTTP
    session whose connection pool holds that many connections (the proxy and CA settings of the
    environment read once, not for each request), and a
    :class:`~django_whatsapp.client.SharedBackoff` that limits the requests in flight and makes a
    429 pause every thread once (with ``RATE_LIMIT``, a
    :class:`~django_whatsapp.ratelimit.SharedRateLimit` that also keeps the shared budget).
    ``kwargs`` go to the client (``sleep=``, ``gate=``...)."""
    conf = conf or get_settings()
    if "gate" not in kwargs:
        kwargs["gate"] = gate_for(conf, max_in_flight=concurrency)
    return WhatsAppClient.from_settings(conf, pool_size=concurrency, **kwargs)
