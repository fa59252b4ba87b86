"""Settings for the load test's gunicorn workers and driver: the test suite's settings on a
PostgreSQL database of the load test's own (``DW_LOADTEST_DATABASE_URL``)."""

import os
from urllib.parse import urlsplit

from tests.settings import *  # noqa: F403

_url = urlsplit(
    os.environ.get("DW_LOADTEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dw_loadtest")
)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/") or "dw_loadtest",
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": str(_url.port or 5432),
        # Persistent connections, as a production deployment would keep them.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
ROOT_URLCONF = "loadtest.urls"
