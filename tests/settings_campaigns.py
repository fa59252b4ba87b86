"""Settings for real campaign workers (``tests/test_campaign_workers.py``): the test settings on
the PostgreSQL database the test names, Django's task framework with the backend it names, and
the shared rate limit in the test run's own Redis, all from the environment:

- ``WORKER_DATABASE_URL``: ``postgres://user@host:port/name``;
- ``WORKER_GATEWAY_URL``: the fake gateway's ``BASE_URL``;
- ``WORKER_BACKEND``: ``db`` (``django-tasks-db``, ``manage.py db_worker``) or ``rq``
  (``django-tasks-rq``, ``manage.py rqworker --job-class django_tasks_rq.Job``);
- ``WORKER_REDIS_URL``: the test run's own Redis server (tests/redis_server.py);
- ``WORKER_REDIS_PREFIX``: the key prefix of this run in Redis.
"""

import os
from importlib.util import find_spec
from urllib.parse import urlparse

from tests.settings import *  # noqa: F403
from tests.settings import DJANGO_WHATSAPP, INSTALLED_APPS

REDIS = os.environ["WORKER_REDIS_URL"]  # never the machine's shared Redis
_BACKEND = os.environ.get("WORKER_BACKEND", "db")

# Django 6.0+ has django.tasks; Django 5.2 needs the backport's app.
_FRAMEWORK = [] if find_spec("django.tasks") else ["django_tasks"]
if _BACKEND == "rq":
    INSTALLED_APPS = [*INSTALLED_APPS, *_FRAMEWORK, "django_rq"]
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": REDIS, "DEFAULT_TIMEOUT": 300}}
else:
    INSTALLED_APPS = [*INSTALLED_APPS, *_FRAMEWORK, "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

_u = urlparse(os.environ.get("WORKER_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _u.path.lstrip("/"),
        "USER": _u.username or "postgres",
        "PASSWORD": _u.password or "",
        "HOST": _u.hostname or "127.0.0.1",
        "PORT": str(_u.port or 5432),
    }
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS,
        "KEY_PREFIX": os.environ.get("WORKER_REDIS_PREFIX", "dw-campaigns"),
    },
}

DJANGO_WHATSAPP = {
    **DJANGO_WHATSAPP,
    "BASE_URL": os.environ.get("WORKER_GATEWAY_URL", "http://127.0.0.1:9/v1/api"),
    # The test holds the gateway's answers while it kills a worker: a long read timeout.
    "TIMEOUT": (5, 120),
    "MAX_RETRIES": 0,
    "RATE_LIMIT": float(os.environ.get("WORKER_RATE_LIMIT", "200")),
    "RATE_LIMIT_CACHE": "ratelimit",
    # A killed worker's chunk is taken over after 3 seconds.
    "CAMPAIGN_LEASE": 3,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django_whatsapp": {"handlers": ["stderr"], "level": "INFO"}},
}
