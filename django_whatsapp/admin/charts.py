"""A chart of sends, deliveries and failures over time, drawn on the server as SVG (no script, no
library, nothing fetched from elsewhere), for the message list and a campaign's page.

Messages are counted by when they were sent (``submitted_at``), per hour when they span at most
:data:`HOURLY_SPAN`, else per day, the latest :data:`MAX_BARS` hours or days: how many went to
the gateway (the funnel's rule: it was asked, or answered), how many of those are now delivered
or seen, and how many failed (every final failure, those refused before any request included).
Two queries: the span, then the counts per hour or day. The figures are in a table too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.template.loader import render_to_string
from django.utils import formats, timezone
from django.utils.safestring import SafeString

from ..models import Message
from .dates import time_of_day_format, when

Status = Message.Status
#: At most this long between the first and the last message: per hour; longer: per day.
HOURLY_SPAN = timedelta(hours=48)
#: The most bars drawn (the latest hours or days).
MAX_BARS = 48
#: The statuses the gateway reported, or accepted: a request certainly reached it.
REACHED = (
    Status.UNKNOWN,
    Status.ACCEPTED,
    Status.PENDING,
    Status.SENT,
    Status.DELIVERED,
    Status.SEEN,
    Status.REJECTED,
    Status.ERROR,
    Status.FAILED,
    Status.DELETED,
)
FAILED = (Status.NOT_SENT, Status.REJECTED, Status.ERROR, Status.FAILED, Status.DELETED)


def reached_gateway() -> Q:
    """The messages whose request went to the gateway: asked at least once, or answered."""
    return Q(attempts__gt=0) | Q(status__in=REACHED)


@dataclass(frozen=True)
class Bar:
    start: datetime
    label: str
    sent: int
    delivered: int
    failed: int

    @property
    def title(self) -> str:
        """The hour or day in full (the label under the bar is short)."""
        return when(self.start)


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    hourly: bool

    @property
    def highest(self) -> int:
        return max((max(b.sent, b.delivered, b.failed) for b in self.bars), default=0)


def activity(queryset: QuerySet[Message]) -> Chart:
    """The chart's figures for ``queryset`` (outgoing messages that were sent, or tried)."""
    sent = queryset.filter(direction=Message.Direction.OUTBOUND, submitted_at__isnull=False)
    latest = sent.aggregate(latest=Max("submitted_at"))["latest"]
    if latest is None:
        return Chart([], hourly=True)
    earliest_shown = latest - HOURLY_SPAN
    hourly = not sent.filter(submitted_at__lt=earliest_shown).exists()
    zone = timezone.get_current_timezone()
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    since = latest - step * MAX_BARS
    bucket = (TruncHour if hourly else TruncDay)("submitted_at", tzinfo=zone)
    rows = (
        sent.filter(submitted_at__gt=since)
        .order_by()
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(
            sent=Count("pk", filter=reached_gateway()),
            delivered=Count("pk", filter=Q(status__in=(Status.DELIVERED, Status.SEEN))),
            failed=Count("pk", filter=Q(status__in=FAILED)),
        )
        .order_by("bucket")
    )
    bars = [
        Bar(
            row["bucket"],
            _label(row["bucket"], hourly),
            row["sent"],
            row["delivered"],
            row["failed"],
        )
        for row in rows
    ]
    return Chart(bars, hourly)


def _label(moment: datetime, hourly: bool) -> str:
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    if hourly:
        return formats.time_format(local, time_of_day_format(False))
    return formats.date_format(local, "MONTH_DAY_FORMAT")


#: The drawing's size, in its own units (it scales to its box).
WIDTH, HEIGHT, BASE = 640, 150, 130


def render(chart: Chart, *, title: str) -> SafeString:
    """The chart as SVG with its figures in a table (``""`` when nothing was sent)."""
    if not chart.bars:
        return SafeString("")
    highest = max(chart.highest, 1)
    slot = WIDTH / len(chart.bars)
    width = max(1.0, min(slot / 4, 16.0))
    columns = []
    every = max(1, len(chart.bars) // 8)  # at most 8 labels under the bars
    for index, bar in enumerate(chart.bars):
        left = index * slot + (slot - 3 * width) / 2  # the three bars, centred in the slot
        columns.append(
            {
                "bar": bar,
                "label_x": round(index * slot + slot / 2, 1),
                "show_label": index % every == 0,
                "parts": [
                    {
                        "kind": kind,
                        "x": round(left + n * width, 1),
                        "width": round(width, 1),
                        "height": round((BASE - 10) * count / highest, 1),
                        "y": round(BASE - (BASE - 10) * count / highest, 1),
                        "count": count,
                    }
                    for n, (kind, count) in enumerate(
                        (("sent", bar.sent), ("delivered", bar.delivered), ("failed", bar.failed))
                    )
                ],
            }
        )
    context = {
        "chart": chart,
        "columns": columns,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "base": BASE,
        "highest": highest,
    }
    return SafeString(render_to_string("django_whatsapp/admin/includes/chart.html", context))
