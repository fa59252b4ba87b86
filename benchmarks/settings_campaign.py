"""Settings for the campaign benchmark's worker processes: the benchmark settings, with the
database task backend (django-tasks-db) and, when ``BENCH_RATE_LIMIT`` is set, the shared rate
limit in Redis (``BENCH_REDIS_URL``, by default DB 12, which the test suite does not use; keys
prefixed ``BENCH_REDIS_PREFIX``)."""

import os

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import DJANGO_WHATSAPP

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # BENCH_REDIS_URL: another Redis (the fault benchmark starts one of its own and stops it).
        "LOCATION": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        "KEY_PREFIX": os.environ.get("BENCH_REDIS_PREFIX", "dw-campaigns-bench"),
    },
}

_rate = os.environ.get("BENCH_RATE_LIMIT")
DJANGO_WHATSAPP = {
    **DJANGO_WHATSAPP,
    "RATE_LIMIT": float(_rate) if _rate else None,
    "RATE_LIMIT_CACHE": "ratelimit",
    "CAMPAIGN_LEASE": 30,
}
