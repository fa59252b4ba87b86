"""The test modules whose behaviour differs on PostgreSQL: races and row locks, the one-statement
status rule and the fast paths, workers, database failures.

The matrix (``noxfile.py``) runs them on PostgreSQL for every Python and Django pair; ``make
test`` runs every test that can reach the database on PostgreSQL, measuring coverage over these
(the PostgreSQL-only code is theirs) and not over the others, which run there the same code as
on SQLite. Every module with a test marked ``postgres`` or asking ``connection.vendor`` joins
them by itself (:func:`selection`); list in ``POSTGRES_MODULES`` the others that exercise
PostgreSQL-only code.

    python tests/postgres_modules.py     # the selection, one path a line (for the Makefile)
"""

from __future__ import annotations

import sys
from pathlib import Path

POSTGRES_MODULES = [
    "tests/test_reliability_concurrency.py",
    "tests/test_reliability_faults.py",
    "tests/test_reliability_load.py",
    "tests/test_status_rules.py",
    "tests/test_status_batch.py",
    "tests/test_send_batch.py",
    "tests/test_callback.py",
    "tests/test_services.py",
    "tests/test_idempotency.py",
    "tests/test_hardening_send.py",
    "tests/test_suite_gaps_send_after_callback.py",
    "tests/test_suite_gaps_inbound_503.py",
    "tests/test_campaigns.py",
    "tests/test_campaign_workers.py",
    "tests/test_tasks_worker.py",
    "tests/test_purge.py",
    "tests/test_callback_fast_path.py",
    "tests/test_migration_indexes.py",
    "tests/test_resync_volume.py",
]
#: What a module that tells the databases apart says: a mark, or a question to the connection.
MARKS = ("mark.postgres", "connection.vendor")


def selection(root: Path | None = None) -> list[str]:
    """``POSTGRES_MODULES`` and every test module that marks a test ``postgres`` or asks
    ``connection.vendor``, as paths relative to ``root`` (the checkout)."""
    root = root or Path(__file__).resolve().parent.parent
    telling = sorted(
        path.relative_to(root).as_posix()
        for path in (root / "tests").glob("test_*.py")
        if any(mark in path.read_text(encoding="utf-8") for mark in MARKS)
    )
    return list(dict.fromkeys([*POSTGRES_MODULES, *telling]))


if __name__ == "__main__":
    sys.stdout.write("".join(f"{module}\n" for module in selection()))
