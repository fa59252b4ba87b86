"""Run every benchmark: ``python -m benchmarks [NAME ...]`` (names: bulk, callback, resync,
admin, campaign, faults). Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres;
BENCH_POSTGRES overrides), gunicorn, Redis at 127.0.0.1:6379 for the campaign benchmark, and
redis-server for the fault benchmark (it starts and stops one of its own).
Prints each figure, its goal and whether it was met."""

from __future__ import annotations

import argparse
import os
import sys

from .harness import Figure, database, machine, postgres_answers

NAMES = ("bulk", "callback", "resync", "admin", "campaign", "faults")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"Some of: {', '.join(NAMES)}.")
    options = parser.parse_args()
    unknown = set(options.names) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    names = options.names or list(NAMES)
    if not postgres_answers():
        print("The benchmarks need PostgreSQL at 127.0.0.1:5432; it does not answer.")
        return 1
    db_name = f"dw_bench_{os.getpid()}"
    os.environ["BENCH_DB_NAME"] = db_name
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    about = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in about.items()))
    figures: list[Figure] = []
    with database(db_name):
        call_command("migrate", verbosity=0)
        for name in names:
            module = __import__(f"benchmarks.{MODULES[name]}", fromlist=["run"])
            figures.extend(module.run())
    print()
    print(f"  {'figure':<52} {'value':>10} {'unit':<8} {'goal':<12}")
    current = None
    for figure in figures:
        if figure.benchmark != current:
            current = figure.benchmark
            print(f"{current}:")
        print(figure.line())
    missed = [f for f in figures if f.met is False]
    print(f"\n{len(figures)} figures, {len(missed)} goal(s) missed.")
    return 0


MODULES = {
    "bulk": "bulk_send",
    "callback": "callback",
    "resync": "resync",
    "admin": "admin_changelist",
    "campaign": "campaign",
    "faults": "faults",
}

if __name__ == "__main__":
    sys.exit(main())
