"""The 24-hour window at its boundaries, to the microsecond.

The window is half-open: it opens at the customer's message and is open while less than 24 hours
have passed, so at exactly 24 hours it is closed (``WindowState.is_open``: ``now < last + 24h``;
the sandbox's ``window_open`` the same, in seconds). A refusal by the gateway closes it until the
customer writes *after* it: a refusal recorded at the very instant of the customer's last message
counts as after it (``closed_at >= last_inbound_at``), one a microsecond earlier does not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from django_whatsapp import window
from django_whatsapp.models import Contact
from django_whatsapp.sandbox.gateway import WINDOW_SECONDS, Gateway

pytestmark = pytest.mark.django_db

CUSTOMER = "380501234567"
WROTE = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
DAY = timedelta(hours=24)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("after", "is_open"),
    [
        (timedelta(0), True),
        (DAY - TICK, True),
        (DAY, False),
        (DAY + TICK, False),
    ],
    ids=["as-they-wrote", "24h-minus-1us", "exactly-24h", "24h-plus-1us"],
)
def test_the_window_is_open_until_exactly_24_hours_excluded(
    after: timedelta, is_open: bool
) -> None:
    window.record_inbound(CUSTOMER, WROTE)

    state = window.state(CUSTOMER, now=WROTE + after)

    assert state.is_open is is_open
    if is_open:
        assert state.closes_at == WROTE + DAY
        assert state.remaining == DAY - after
    else:
        assert (state.closes_at, state.remaining) == (None, None)


def test_the_last_open_microsecond_has_one_microsecond_left() -> None:
    window.record_inbound(CUSTOMER, WROTE)
    assert window.state(CUSTOMER, now=WROTE + DAY - TICK).remaining == TICK


@pytest.mark.parametrize(
    ("refused", "closed_by_gateway"),
    [(-TICK, False), (timedelta(0), True), (TICK, True)],
    ids=["refused-1us-before-they-wrote", "refused-as-they-wrote", "refused-1us-after"],
)
def test_a_refusal_at_the_instant_of_the_last_message_keeps_the_window_closed(
    refused: timedelta, closed_by_gateway: bool
) -> None:
    window.record_inbound(CUSTOMER, WROTE)
    assert window.mark_closed(CUSTOMER, at=WROTE + refused) is True

    state = window.state(CUSTOMER, now=WROTE + timedelta(minutes=1))

    assert state.closed_by_gateway is closed_by_gateway
    assert state.is_open is not closed_by_gateway


def test_a_message_at_the_same_instant_as_the_last_one_changes_nothing() -> None:
    window.record_inbound(CUSTOMER, WROTE)
    window.mark_closed(CUSTOMER, at=WROTE + timedelta(minutes=5))
    window.record_inbound(CUSTOMER, WROTE)  # the same report again

    contact = Contact.objects.get(number=CUSTOMER)
    assert contact.last_inbound_at == WROTE
    assert not window.state(CUSTOMER, now=WROTE + timedelta(minutes=6)).is_open


@pytest.mark.parametrize(
    ("after", "is_open"),
    [
        (0.0, True),
        (WINDOW_SECONDS - 1e-3, True),
        (WINDOW_SECONDS, False),
        (WINDOW_SECONDS + 1e-3, False),
    ],
    ids=["as-they-wrote", "24h-minus-1ms", "exactly-24h", "24h-plus-1ms"],
)
def test_the_sandbox_keeps_the_same_boundary(after: float, is_open: bool) -> None:
    sandbox = Gateway()
    wrote = 1_770_000_000.0
    sandbox.record_inbound(CUSTOMER, wrote)
    assert sandbox.window_open(CUSTOMER, now=wrote + after) is is_open
