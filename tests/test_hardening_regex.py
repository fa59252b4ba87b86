"""Issue #10, item 3: every pattern the package applies to outside text runs in linear time.

No timings: each module-level pattern of the package is checked by the shape of its parse tree
(no quantifier inside a repeated group; no two unbounded quantifiers that can match the same
character without a required character between them that neither can match; an unanchored
pattern is searched, so it is read as if it began with ``.*?``), each is run on 1 MB inputs built
to make a backtracking pattern blow up (in a child process with a time limit, so that one that
does fails the test instead of hanging it), and the gateway's error texts are cut to
``MAX_MATCHED_TEXT`` characters before any pattern reads them.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import re._compiler as sre_compile
import re._constants as sre
import re._parser as sre_parse
import subprocess
import sys
from typing import Any

import pytest

import django_whatsapp
from django_whatsapp.admin import display
from django_whatsapp.exceptions import (
    INVALID_PARAMETER_PATTERN,
    MAX_MATCHED_TEXT,
    InvalidParameter,
    ServiceWindowClosed,
    bounded,
    error_from_answer,
    invalid_parameter_name,
)
from django_whatsapp.models import Message

MB = 1024 * 1024
UNBOUNDED = sre.MAXREPEAT
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
#: The characters a pattern's character classes are tried on.
ALPHABET = [chr(code) for code in range(0x250)] + list("\u00a0\u2028\u3000\u0663\u0431")


def package_patterns() -> dict[str, re.Pattern[str]]:
    """Every compiled pattern held by a module of the package, by ``module.NAME``."""
    found: dict[str, re.Pattern[str]] = {}
    for info in pkgutil.walk_packages(django_whatsapp.__path__, "django_whatsapp."):
        if ".migrations." in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                found[f"{info.name}.{name}"] = value
    return found


PATTERNS = package_patterns()


class Item:
    """One element of a flattened sequence: how often it must and may match, and the
    characters it can consume."""

    def __init__(self, low: int, high: int, chars: frozenset[str]) -> None:
        self.low, self.high, self.chars = low, high, chars


def _chars(node: Any, flags: int) -> frozenset[str]:
    """The characters any single-character part of ``node`` (a parsed (sub)pattern) matches."""
    state = sre_parse.State()
    state.flags = flags
    sub = sre_parse.SubPattern(state, [node])
    compiled = sre_compile.compile(sub, flags)
    return frozenset(c for c in ALPHABET if compiled.fullmatch(c))


def _all_chars(items: Any, flags: int) -> frozenset[str]:
    chars: set[str] = set()
    for op, av in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            chars |= _chars((op, av), flags)
        elif op == sre.SUBPATTERN:
            chars |= _all_chars(av[3], flags)
        elif op in REPEATS:
            chars |= _all_chars(av[2], flags)
        elif op == sre.BRANCH:
            for branch in av[1]:
                chars |= _all_chars(branch, flags)
    return frozenset(chars)


def _has_repeat(items: Any) -> bool:
    for op, av in items:
        if op in REPEATS and av[1] > 1:
            return True
        if op == sre.SUBPATTERN and _has_repeat(av[3]):
            return True
        if op == sre.BRANCH and any(_has_repeat(branch) for branch in av[1]):
            return True
    return False


def _min_width(items: Any) -> int:
    return int(sre_parse.SubPattern(sre_parse.State(), list(items)).getwidth()[0])


def problems(pattern: re.Pattern[str]) -> list[str]:
    """Why matching ``pattern`` may take more than linear time (empty when it cannot)."""
    flags = pattern.flags
    tree = list(sre_parse.parse(pattern.pattern, flags))
    found: list[str] = []

    def sequence(items: Any, searched: bool) -> None:
        flat: list[Item] = []
        if searched:  # search() tries every start: as if the pattern began with .*?
            flat.append(Item(0, UNBOUNDED, frozenset(ALPHABET)))
        for op, av in items:
            if op == sre.SUBPATTERN:
                sequence(av[3], False)
                flat.append(Item(_min_width(av[3]), UNBOUNDED, _all_chars(av[3], flags)))
                if not _has_repeat(av[3]):
                    flat[-1].high = 1
            elif op in REPEATS:
                low, high, body = av
                if high > 1 and _has_repeat(body):
                    found.append(f"a quantifier inside a repeated group in {pattern.pattern!r}")
                flat.append(Item(low * _min_width(body), high, _all_chars(body, flags)))
            elif op == sre.BRANCH:
                for branch in av[1]:
                    sequence(branch, False)
                width = min(_min_width(branch) for branch in av[1])
                high = UNBOUNDED if any(_has_repeat(b) for b in av[1]) else 1
                flat.append(Item(width, high, _all_chars([(op, av)], flags)))
            elif op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
                flat.append(Item(1, 1, _chars((op, av), flags)))
            else:  # anchors and other zero-width parts
                flat.append(Item(0, 0, frozenset()))
        # The last consuming item cannot be made to fail by what follows it.
        last = max((k for k, item in enumerate(flat) if item.chars), default=-1)
        for i, first in enumerate(flat):
            for j in range(i + 1, len(flat)):
                second = flat[j]
                if first.high != UNBOUNDED or second.high != UNBOUNDED or j == last:
                    continue
                shared = first.chars & second.chars
                if shared and not any(
                    middle.low >= 1 and not (middle.chars & shared) for middle in flat[i + 1 : j]
                ):
                    found.append(
                        f"two unbounded quantifiers can match the same characters in "
                        f"{pattern.pattern!r}"
                    )

    anchored = bool(tree) and tree[0] == (sre.AT, sre.AT_BEGINNING)
    sequence(tree, not anchored)
    return found


def test_the_package_holds_the_patterns_this_test_knows_of() -> None:
    assert {
        "django_whatsapp.exceptions.INVALID_PARAMETER_PATTERN",
        "django_whatsapp.exceptions.SERVICE_WINDOW_PATTERN",
        "django_whatsapp.models.PLACEHOLDER_RE",
        "django_whatsapp.payloads._OVERRIDE_PLACEHOLDER_RE",
        "django_whatsapp.numbers._SEPARATOR_RE",
        "django_whatsapp.logs._SIGNATURE",
        "django_whatsapp.inputs._SURROGATE",
        "django_whatsapp.forms._CUT_FIRST_WORD",
        "django_whatsapp.forms._CUT_LAST_WORD",
    } <= set(PATTERNS)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_no_pattern_of_the_package_can_backtrack(name: str) -> None:
    assert problems(PATTERNS[name]) == []


@pytest.mark.parametrize(
    "source",
    [
        r"^\s*Invalid\s+Parameter\b\s*:?\s*(.*?)\s*$",  # the pattern of issue #10
        r"\s+x",
        r"(a+)+b",
        r"(\w|\d)*z",
        r"a*a*b",
        r"\{\{\s*(\d+)\d*\}\}",
    ],
)
def test_the_check_finds_backtracking_patterns(source: str) -> None:
    assert problems(re.compile(source, re.IGNORECASE | re.DOTALL)) != []


#: Inputs of about 1 MB built to make a backtracking pattern blow up: (head, unit, times, tail)
#: is ``head + unit * times + tail``.
HOSTILE_INPUTS = [
    ("Invalid Parameter: a", " ", MB, "x"),
    ("", " ", MB, "x"),
    ("{{", " ", MB, ""),
    ("{{", "9", MB, ""),
    ("{{ 1", " ", MB, ""),
    ("24", " ", MB, ""),
    ("", "a ", MB // 2, ""),
    ("", "\n", MB, "x"),
    ("1", " ", MB, "x"),
]
#: Seconds a child process gets to run one pattern over every hostile input: a linear pattern
#: needs a few hundredths on any machine, a backtracking one would need hours or for ever, so
#: the limit only turns a hang into a failure and is never near what a correct run takes.
TIME_LIMIT = 60.0

#: Run in a child process: search, match and substitute with the pattern on every input.
RUN_PATTERN = """
import json, re, sys
source, flags, inputs = json.load(sys.stdin)
pattern = re.compile(source, flags)
for head, unit, times, tail in inputs:
    text = head + unit * times + tail
    pattern.search(text)
    pattern.match(text)
    assert isinstance(pattern.sub("", text), str)
print("completed")
"""


def run_on_hostile_inputs(pattern: re.Pattern[str], time_limit: float = TIME_LIMIT) -> None:
    """Run ``pattern`` over ``HOSTILE_INPUTS`` in a child process; fail the test when it has not
    completed after ``time_limit`` seconds (the child is killed), or when the child fails."""
    spec = json.dumps([pattern.pattern, int(pattern.flags), HOSTILE_INPUTS])
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, on our own script
            [sys.executable, "-c", RUN_PATTERN],
            input=spec,
            capture_output=True,
            text=True,
            timeout=time_limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{pattern.pattern!r} did not complete on the 1 MB inputs within {time_limit:g}s: "
            "it backtracks"
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["completed"]


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_pattern_completes_on_1_mb_inputs(name: str) -> None:
    run_on_hostile_inputs(PATTERNS[name])


def test_a_backtracking_pattern_fails_the_1_mb_check_instead_of_hanging_it() -> None:
    # A pattern that goes catastrophic on the first input (a run of a million spaces never
    # followed by what it needs): its run is cut at the limit and the check fails saying so.
    with pytest.raises(pytest.fail.Exception, match=r"did not complete .* it backtracks"):
        run_on_hostile_inputs(re.compile(r"(\s+)+\d"), time_limit=1)


def test_the_gateways_texts_are_cut_before_a_pattern_reads_them() -> None:
    name = "Invalid Parameter: a" + " " * 40_000 + "x"
    assert len(bounded(name)) == MAX_MATCHED_TEXT
    assert invalid_parameter_name(name) == "a"  # the "x" is past what is read
    assert InvalidParameter(name=name).param == "a"
    error = error_from_answer(400, {"name": "Invalid Parameter: " + "b" * MB, "code": 1})
    assert isinstance(error, InvalidParameter)
    assert error.param is not None
    assert len(error.param) <= MAX_MATCHED_TEXT
    late = error_from_answer(400, {"name": "x", "message": " " * MB + "only send a template"})
    assert not isinstance(late, ServiceWindowClosed)  # past what is read
    message = Message(error_name=name, error_message=" " * MB + "x", error_code=1)
    explanation = display.explain_error(message)
    assert explanation is not None
    assert "a" in explanation.title


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("Invalid Parameter: [destination_addr]", "destination_addr"),
        ("Invalid Parameter:text", "text"),
        ("  invalid   parameter  :  [file_url]  ", "file_url"),
        ("Invalid Parameter", None),
        ("Invalid Parameter: []", None),
        ("Invalid Parameters: text", None),
        ("Invalid Parameter:\n[text]\n", "text"),
    ],
)
def test_the_parameter_is_still_read_from_the_name(name: str, param: str | None) -> None:
    assert invalid_parameter_name(name) == param
    assert (INVALID_PARAMETER_PATTERN.match(name) is not None) is not name.startswith(
        "Invalid Parameters"
    )
