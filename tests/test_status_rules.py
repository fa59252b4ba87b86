"""The rank rule of SPEC section 5, in the one function that holds it, and status parsing."""

from __future__ import annotations

import itertools

import pytest

from django_whatsapp.models import Message
from django_whatsapp.status_rule import (
    FINAL_STATUSES,
    PROVIDER_STATUSES,
    STATUS_ORDER,
    lower_ranked,
    normalize_status,
    resolve_status,
    status_rank,
)

SPEC_ORDER = [
    "draft",
    "queued",
    "sending",
    "unknown",
    "accepted",
    "pending",
    "sent",
    "delivered",
    "seen",
    "not_sent",
    "rejected",
    "error",
    "failed",
    "deleted",
]


def test_the_order_is_the_one_of_the_spec() -> None:
    assert list(STATUS_ORDER) == SPEC_ORDER
    assert [status_rank(s) for s in SPEC_ORDER] == list(range(len(SPEC_ORDER)))


def test_every_status_choice_has_a_rank() -> None:
    assert sorted(Message.Status.values) == sorted(SPEC_ORDER)


def test_the_final_statuses_are_the_last_five() -> None:
    assert frozenset(SPEC_ORDER[-5:]) == FINAL_STATUSES
    assert {"not_sent", "rejected", "error", "failed", "deleted"} == FINAL_STATUSES


@pytest.mark.parametrize(("current", "reported"), list(itertools.product(SPEC_ORDER, repeat=2)))
def test_resolve_status_keeps_the_higher_ranked(current: str, reported: str) -> None:
    expected = max(current, reported, key=SPEC_ORDER.index)
    assert resolve_status(current, reported) == expected


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        ("seen", "delivered", "seen"),
        ("failed", "delivered", "failed"),
        ("delivered", "seen", "seen"),
        ("seen", "failed", "failed"),
        ("accepted", "sent", "sent"),
        ("unknown", "accepted", "accepted"),
    ],
)
def test_resolve_status_cases_named_in_the_spec(current: str, reported: str, expected: str) -> None:
    assert resolve_status(current, reported) == expected


@pytest.mark.parametrize("reports", list(itertools.permutations(["sent", "delivered", "seen"])))
def test_any_order_of_reports_ends_at_the_highest(reports: tuple[str, ...]) -> None:
    status = "accepted"
    for reported in reports:
        status = resolve_status(status, reported)
    assert status == "seen"


def test_resolve_status_refuses_an_unknown_status() -> None:
    with pytest.raises(KeyError):
        resolve_status("sent", "read")
    with pytest.raises(KeyError):
        resolve_status("bogus", "sent")


def test_lower_ranked() -> None:
    assert lower_ranked("draft") == []
    assert lower_ranked("accepted") == ["draft", "queued", "sending", "unknown"]
    assert lower_ranked("deleted") == SPEC_ORDER[:-1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "sent"),
        (1, "delivered"),
        (2, "rejected"),
        (3, "error"),
        (4, "failed"),
        (5, "deleted"),
        (6, "pending"),
        (7, "seen"),
        ("1", "delivered"),
        (" 7 ", "seen"),
        ("007", "seen"),
        ("delivered", "delivered"),
        ("DELIVERED", "delivered"),
        (" Seen\n", "seen"),
        ("read", "seen"),
        ("READ", "seen"),
        ("not_sent", "not_sent"),
        ("accepted", "accepted"),
    ],
)
def test_normalize_status(value: object, expected: str) -> None:
    assert normalize_status(value) == expected


def test_provider_codes_are_the_documented_ones() -> None:
    assert PROVIDER_STATUSES == {
        0: "sent",
        1: "delivered",
        2: "rejected",
        3: "error",
        4: "failed",
        5: "deleted",
        6: "pending",
        7: "seen",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (8, "unknown status code 8"),
        (-1, "unknown status code -1"),
        ("8", "unknown status code 8"),
        ("1000", "unknown status '1000'"),
        ("-1", "unknown status '-1'"),
        ("", "unknown status ''"),
        ("bogus", "unknown status 'bogus'"),
        ("\u0661", "unknown status"),  # an Arabic-Indic digit one is not the code 1
        ("x" * 100, "unknown status 'xxxx"),
        (True, "not a boolean"),
        (False, "not a boolean"),
        (None, "not NoneType"),
        (1.0, "not float"),
        ([1], "not list"),
        ({"status": 1}, "not dict"),
    ],
)
def test_normalize_status_refuses_bad_values(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match="status") as caught:
        normalize_status(value)
    assert reason in str(caught.value)


def test_normalize_status_cuts_a_long_bad_value_in_its_message() -> None:
    with pytest.raises(ValueError, match="unknown status") as caught:
        normalize_status("y" * 1000)
    assert len(str(caught.value)) < 80
