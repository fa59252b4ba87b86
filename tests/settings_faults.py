"""Settings for the worker processes of the fault tests (``tests/test_faults_workers.py``): the
campaign workers' settings (``tests/settings_campaigns.py``), with the rate-limit cache in the
Redis the test names (``WORKER_REDIS_URL``: a ``redis-server`` of the test's own, which it stops
and starts again), short pauses while the gateway or that cache cannot be reached, and one
retry-free request per message."""

import os

from tests.settings_campaigns import *  # noqa: F403
from tests.settings_campaigns import CACHES, DJANGO_WHATSAPP

CACHES = {
    **CACHES,
    "ratelimit": {
        **CACHES["ratelimit"],
        "LOCATION": os.environ.get("WORKER_REDIS_URL", CACHES["ratelimit"]["LOCATION"]),
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
    },
}

DJANGO_WHATSAPP = {**DJANGO_WHATSAPP, "OUTAGE_MAX_PAUSE": 1, "TIMEOUT": (2, 30)}
