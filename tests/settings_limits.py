"""Settings for the worker processes of the limits' tests (``tests/test_limits_workers.py``): the
fault tests' worker settings (``tests/settings_faults.py``: PostgreSQL, ``db_worker``, the
rate-limit cache in a Redis of the test's own), with the limits' clock shared through a file
(``tests/clock.py``: ``DJANGO_WHATSAPP_TEST_CLOCK`` names it) and the ``DAILY_LIMIT`` the test
names (``WORKER_DAILY_LIMIT``)."""

import os

from tests.settings_faults import *  # noqa: F403
from tests.settings_faults import DJANGO_WHATSAPP

DJANGO_WHATSAPP = {
    **DJANGO_WHATSAPP,
    "CLOCK": "tests.clock.now",
    "DAILY_LIMIT": int(os.environ.get("WORKER_DAILY_LIMIT", "0")) or None,
}
