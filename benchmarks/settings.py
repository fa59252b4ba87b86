"""Settings for the benchmarks: the test suite's settings on PostgreSQL, with the fake gateway and
the database that the runner names in the environment (``BENCH_DB_NAME``, ``BENCH_GATEWAY_URL``),
and logging quiet (it would otherwise be measured too)."""

import os
from importlib.util import find_spec

from tests.settings import *  # noqa: F403
from tests.settings import DJANGO_WHATSAPP, INSTALLED_APPS

ROOT_URLCONF = "benchmarks.urls"

# The campaign benchmark's tasks go to db_worker processes (benchmarks/settings_campaign.py).
INSTALLED_APPS = [
    *INSTALLED_APPS,
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "django_tasks_db",
]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
DEBUG = False

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB_NAME", "dw_bench"),
        "USER": os.environ.get("BENCH_DB_USER", "postgres"),
        "HOST": os.environ.get("BENCH_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_DB_PORT", "5432"),
        "CONN_MAX_AGE": 60,
        # BENCH_PREPARED=1: prepared statements (the callback benchmark measures both ways).
        "OPTIONS": (
            {"server_side_binding": True, "prepare_threshold": 5}
            if os.environ.get("BENCH_PREPARED") == "1"
            else {}
        ),
    }
}

DJANGO_WHATSAPP = {
    **DJANGO_WHATSAPP,
    "BASE_URL": os.environ.get("BENCH_GATEWAY_URL", "http://127.0.0.1:9/v1/api"),
    # The lifecycle benchmark: callbacks come back to its gunicorn.
    "CALLBACK_BASE_URL": os.environ.get(
        "BENCH_CALLBACK_BASE_URL", DJANGO_WHATSAPP["CALLBACK_BASE_URL"]
    ),
    "MAX_RETRIES": 0,
    "TIMEOUT": (5, 30),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "ERROR"},
}
