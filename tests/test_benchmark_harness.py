"""The benchmarks' harness measures the process it names, not its parent (no timings here)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from benchmarks import harness

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the harness reads Linux's /proc"
)

#: What the parent holds while it starts the child: far more than a bare interpreter's peak.
PARENT_MB = 256
#: A Python interpreter that imports the harness stays well under this.
SMALL_MB = 64


def hold_memory(megabytes: int) -> bytearray:
    """A block of ``megabytes`` whose every page is written, so that it is resident."""
    block = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return block


def test_a_small_child_reports_its_own_small_peak_while_its_parent_is_large() -> None:
    held = hold_memory(PARENT_MB)
    parent_peak = harness.peak_rss_kib()
    assert parent_peak is not None
    assert parent_peak / 1024 >= PARENT_MB  # the setup: the parent really is large

    child = textwrap.dedent(
        """
        import json
        from benchmarks.harness import own_usage
        print("some output before the report")
        print(json.dumps({"answer": 42, **own_usage()}))
        """
    )
    report = harness.run_child(["-c", child], env={**os.environ, "PYTHONPATH": str(harness.ROOT)})
    del held

    assert report["answer"] == 42  # the last line is the report
    assert 0 < report["peak_rss_mb"] < SMALL_MB, report
    assert report["cpu"] >= 0


def test_the_peak_of_a_live_child_is_read_from_outside_as_its_own() -> None:
    held = hold_memory(PARENT_MB)
    child = textwrap.dedent(
        """
        import sys
        block = bytearray(40 * 1024 * 1024)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    process = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        peak = harness.peak_rss_kib(process.pid)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)
    del held
    assert peak is not None
    assert 40 <= peak / 1024 < 40 + SMALL_MB


def test_a_process_that_is_gone_has_no_peak() -> None:
    assert harness.peak_rss_kib(2**22 + 12345) is None  # above Linux's largest process id


def test_a_child_that_prints_nothing_is_an_error_saying_so() -> None:
    with pytest.raises(ValueError, match="printed nothing"):
        harness.run_child(["-c", "pass"])


def test_profile_parts_take_each_sample_once_by_the_first_part_in_its_stack(tmp_path: Any) -> None:
    from benchmarks import profile

    raw = tmp_path / "web.txt"
    raw.write_text(
        "handle (gunicorn/sync.py:1);dispatch (rest_framework/views.py:2);"
        "receive (django_whatsapp/webhooks/callback.py:3);execute (psycopg/cursor.py:4) 6\n"
        "handle (gunicorn/sync.py:1);dispatch (rest_framework/views.py:2);"
        "receive (django_whatsapp/webhooks/callback.py:3) 3\n"
        "handle (gunicorn/sync.py:1) 1\n"
        "not a sample line\n"
    )
    samples = profile.read([str(raw)])

    shares = samples.parts(
        [("statement", {"execute"}), ("view", {"receive"}), ("drf", {"dispatch"})]
    )

    assert samples.total == 10
    assert shares == {"statement": 0.6, "view": 0.3, "drf": 0.0, "other": 0.1}
    assert samples.under("receive").total == 9
    assert profile.short("execute (/x/site-packages/psycopg/cursor.py:4)") == (
        "execute (psycopg/cursor.py)"
    )


@pytest.mark.parametrize("text", ["10000", "10000,1000", "1000,1000", "a,b", "0,10", "1,2,3", ""])
def test_the_import_sizes_are_two_counts_the_smaller_first(text: str) -> None:
    """A quick run's ``BENCH_IMPORT_SIZES=10000`` stopped the benchmark after its other rounds
    with an unpacking error; it is refused before anything runs, saying what is expected."""
    from benchmarks.campaign import import_sizes

    with pytest.raises(SystemExit, match="two row counts, the smaller first"):
        import_sizes(text)
    assert import_sizes("1000,10000") == (1000, 10000)
