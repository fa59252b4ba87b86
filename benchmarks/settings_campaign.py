"""Settings for the campaign benchmark's worker processes: the benchmark settings, with the
database task backend (django-tasks-db) and, when ``BENCH_RATE_LIMIT`` is set, the shared rate
limit in Redis (DB 5, keys prefixed ``BENCH_REDIS_PREFIX``)."""

import os

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import DJANGO_WHATSAPP

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # BENCH_REDIS_URL: a Redis of the benchmark's own (the fault benchmark stops it).
        "LOCATION": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
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
