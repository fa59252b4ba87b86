"""The counts above the message list and on a campaign's page: every message of a queryset,
the incoming ones said apart, the outgoing ones by status, and the delivery funnel of the ones
sent to the gateway (one query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from ..models import Message
from ..status_rule import STATUS_ORDER, STATUS_RANK
from .charts import reached_gateway
from .display import status_badge

Status = Message.Status


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int
    url: str

    @property
    def badge(self) -> SafeString:
        return status_badge(self.status)


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    count: int
    percent: int


@dataclass(frozen=True)
class Summary:
    #: Every message of the list, both directions: the number the list shows.
    total: int
    #: Of which received from customers (no delivery to count).
    incoming: int
    #: Outgoing messages that went to the gateway (asked, or answered): the funnel's base.
    submitted: int
    statuses: list[StatusCount]
    funnel: list[FunnelStep]
    #: Outgoing messages refused here before any request (opted out, window, a check).
    refused: int = 0


def _at_least(counts: dict[str, int], lowest: str, highest: str = Status.SEEN) -> int:
    """Messages that reached ``lowest`` on the way to ``highest`` (a seen message was also
    delivered and accepted)."""
    low, high = STATUS_RANK[lowest], STATUS_RANK[highest]
    return sum(n for status, n in counts.items() if low <= STATUS_RANK[status] <= high)


def status_summary(queryset: QuerySet[Message], link: Any = None) -> Summary:
    """Counts of ``queryset``, in one query: every message (the number the list shows), the
    incoming ones, and the outgoing ones by status with their delivery funnel.

    ``link(status)`` gives the URL listing the outgoing messages of a status. Percentages are of
    the messages submitted to the gateway: asked at least once, or answered (not a draft, a
    queued message, one in flight, nor one refused here before any request, such as to a
    customer who opted out: ``refused``). Accepted counts every message the gateway took,
    including those later rejected or failed; delivered and seen count the messages that
    reached them.
    """
    outgoing = Q(direction=Message.Direction.OUTBOUND)
    aggregated: dict[str, int] = queryset.aggregate(
        _incoming=Count("pk", filter=~outgoing),
        _submitted=Count("pk", filter=outgoing & reached_gateway()),
        _refused=Count("pk", filter=outgoing & Q(status=Status.NOT_SENT, attempts=0)),
        **{status: Count("pk", filter=outgoing & Q(status=status)) for status in STATUS_ORDER},
    )
    incoming = aggregated.pop("_incoming")
    submitted = aggregated.pop("_submitted")
    refused = aggregated.pop("_refused")
    counts = aggregated
    total = sum(counts.values())
    provider_final = (Status.REJECTED, Status.ERROR, Status.FAILED, Status.DELETED)
    accepted = _at_least(counts, Status.ACCEPTED) + sum(counts[s] for s in provider_final)

    def step(key: str, label: str, count: int) -> FunnelStep:
        percent = round(100 * count / submitted) if submitted else 0
        return FunnelStep(key, label, count, percent)

    return Summary(
        total=total + incoming,
        incoming=incoming,
        submitted=submitted,
        refused=refused,
        statuses=[
            StatusCount(
                status, str(Status(status).label), counts[status], link(status) if link else ""
            )
            for status in STATUS_ORDER
            if counts[status]
        ],
        funnel=[
            step("accepted", _("Accepted"), accepted),
            step("delivered", _("Delivered"), _at_least(counts, Status.DELIVERED)),
            step("seen", _("Seen"), counts[Status.SEEN]),
        ],
    )
