"""Run every benchmark: ``python -m benchmarks [NAME ...]`` (names: bulk, callback, resync,
admin, campaign, faults, lifecycle). Needs PostgreSQL's programs (initdb, postgres: the run
makes a server of its own, and the lifecycle benchmark another), or ``BENCH_POSTGRES`` naming a
server (trust auth; the lifecycle benchmark needs the programs anyway), gunicorn, Redis at
127.0.0.1:6379 for the campaign benchmark, and redis-server for the fault benchmark (it starts
and stops one of its own). Prints each figure, its goal and whether it was met."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from urllib.parse import urlsplit

from .harness import (
    Figure,
    database,
    machine,
    machine_cpu,
    postgres_answers,
    postgres_url,
    tree_cpu,
)
from .postgres import bindir, private_server

NAMES = ("bulk", "callback", "resync", "admin", "campaign", "faults", "lifecycle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"Some of: {', '.join(NAMES)}.")
    parser.add_argument(
        "--recipients",
        type=int,
        help="The lifecycle campaign's size (default 20,000; e.g. 2000 for a quick run).",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="Record the lifecycle's gunicorn and workers with py-spy into DIR (its figures "
        "are then not the benchmark's: py-spy takes CPU too).",
    )
    options = parser.parse_args()
    if options.profile:
        os.environ["BENCH_PROFILE_DIR"] = os.path.abspath(options.profile)
    if options.recipients is not None:
        if options.recipients < 2 * 20:
            parser.error("--recipients: at least 40")
        os.environ["BENCH_LIFECYCLE_RECIPIENTS"] = str(options.recipients)
    unknown = set(options.names) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    names = options.names or list(NAMES)
    with contextlib.ExitStack() as stack:
        if "BENCH_POSTGRES" not in os.environ and bindir() is not None:
            # A server of the run's own: its CPU is the benchmarks' alone, whatever else the
            # machine's shared server is doing.
            server = stack.enter_context(private_server())
            os.environ["BENCH_POSTGRES"] = server.url
            print(f"PostgreSQL: a private server on 127.0.0.1:{server.port} ({server.directory})")
        return run(names)


def run(names: list[str]) -> int:
    if not postgres_answers():
        print(f"The benchmarks need PostgreSQL at {postgres_url()}; it does not answer.")
        return 1
    server = urlsplit(postgres_url())
    os.environ["BENCH_DB_HOST"] = server.hostname or "127.0.0.1"
    os.environ["BENCH_DB_PORT"] = str(server.port or 5432)
    os.environ["BENCH_DB_USER"] = server.username or "postgres"
    db_name = f"bench_{os.getpid()}"
    os.environ["BENCH_DB_NAME"] = db_name
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    about = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in about.items()))
    started, machine_before, own_before = time.monotonic(), machine_cpu(), tree_cpu(os.getpid())
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
    seconds = time.monotonic() - started
    spent = machine_cpu() - machine_before
    own = tree_cpu(os.getpid()) - own_before
    print(
        f"\nThe machine over the run ({seconds / 60:.1f} min): {spent.busy / seconds:.2f} cores "
        f"busy on average, {own / seconds:.2f} of them the benchmarks' (this process and its "
        f"children), {(spent.busy - own) / seconds:.2f} other work; steal "
        f"{spent.steal / seconds:.2f} cores; load average now "
        + " ".join(f"{n:.2f}" for n in os.getloadavg())
    )
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
    "lifecycle": "lifecycle",
}

if __name__ == "__main__":
    sys.exit(main())
