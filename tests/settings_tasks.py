"""Settings for real task workers (``tests/test_tasks_worker.py``): the test settings, plus
Django's task framework with the database backend (``django-tasks-db``), ``SEND_ASYNC`` on, and
the database and fake gateway that the test names in the environment:

- ``WORKER_DATABASE_URL``: ``postgres://user@host:port/name``, or ``WORKER_SQLITE_PATH``: a file;
- ``WORKER_GATEWAY_URL``: the fake gateway's ``BASE_URL``.
"""

import os
from importlib.util import find_spec
from urllib.parse import urlparse

from tests.settings import *  # noqa: F403
from tests.settings import DJANGO_WHATSAPP, INSTALLED_APPS

# Django 6.0+ has django.tasks; Django 5.2 needs the backport's app.
_FRAMEWORK = [] if find_spec("django.tasks") else ["django_tasks"]
INSTALLED_APPS = [*INSTALLED_APPS, *_FRAMEWORK, "django_tasks_db"]

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

_url = os.environ.get("WORKER_DATABASE_URL", "")
if _url.startswith("postgres"):
    _u = urlparse(_url)
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
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("WORKER_SQLITE_PATH", "dw_worker_test.sqlite3"),
            # Several worker processes write: wait for the lock rather than fail.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }

DJANGO_WHATSAPP = {
    **DJANGO_WHATSAPP,
    "BASE_URL": os.environ.get("WORKER_GATEWAY_URL", "http://127.0.0.1:9/v1/api"),
    "SEND_ASYNC": True,
    "MAX_RETRIES": 0,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django_whatsapp": {"handlers": ["stderr"], "level": "INFO"}},
}
