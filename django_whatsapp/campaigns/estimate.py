"""How long a campaign will take, and when it will finish: before it starts, and kept current
while it runs.

:func:`estimate` is a pure function of what decides it: the recipients left (by time zone, when
the campaign has sending hours), the rate (``RATE_LIMIT``, or the throughput measured while the
campaign runs), ``DAILY_LIMIT`` and the places already taken in its moving 24 hours, the sending
hours, and the other work that shares the account (its other running campaigns). It plays the
campaign forward as the engine sends it: while some recipients are within their hours and the
daily limit has room, at the rate; otherwise it waits for the next opening or the next place to
free, to the daily limit's own 10-minute buckets. The result has the finish time and a timeline
of the periods in which it sends.

:func:`campaign_estimate` reads those inputs for one campaign (a few aggregate queries and one
read of the cache) and is what ``whatsapp_campaign status`` prints and the campaign's admin page
shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Min
from django.db.models.functions import Substr
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import clock, tier
from ..conf import get_settings
from ..exceptions import RateLimitUnavailable
from ..models import Campaign, Message
from .control import campaign_progress
from .hours import SendingHours, of_campaign, zone_name

__all__ = ["CampaignEstimate", "Estimate", "Period", "campaign_estimate", "estimate"]

Status = Message.Status
#: Requests per second assumed without ``RATE_LIMIT`` until the campaign's own throughput is
#: measured (the gateway's latency and the workers decide it then).
ASSUMED_RATE = 20.0
#: How far ahead the estimate looks: a campaign that would take longer has no finish time.
HORIZON = timedelta(days=90)
#: The measured throughput is the campaign's sends over the last minute...
MEASURE_OVER = timedelta(seconds=60)
#: ...when there were at least this many.
MIN_MEASURED = 10
#: The messages left to send (in flight included).
LEFT = (Status.DRAFT, Status.QUEUED, Status.SENDING)
_DONE = 1e-6


@dataclass(frozen=True)
class Period:
    """A stretch of time in which the campaign sends ``sent`` recipients."""

    start: datetime
    end: datetime
    sent: float


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate` found: ``finishes_at`` (``None`` when it would take longer than
    ``HORIZON``), the ``rate`` it assumed and the sending ``timeline``."""

    now: datetime
    remaining: int
    rate: float
    finishes_at: datetime | None
    timeline: tuple[Period, ...] = ()

    @property
    def duration(self) -> timedelta | None:
        return None if self.finishes_at is None else self.finishes_at - self.now


def estimate(
    *,
    now: datetime,
    groups: Sequence[tuple[str | None, int]],
    rate: float,
    hours: SendingHours | None = None,
    daily_limit: int | None = None,
    taken: Sequence[tuple[datetime, int]] = (),
    others: int = 0,
) -> Estimate:
    """When the recipients left finish, from ``now``.

    ``groups``: ``(zone name, count)`` of the recipients left (``None``: no sending hours
    apply). ``rate``: requests per second. ``hours``: the sending hours, in each group's zone.
    ``daily_limit`` and ``taken``: the account's ``DAILY_LIMIT`` and its places already taken,
    as ``(when they free, count)``. ``others``: recipients of the account's other running work,
    which share the rate and the daily limit (sent alongside, in proportion).
    """
    if not rate > 0:
        raise ValueError("rate must be a positive number of requests per second")
    zones = {name: ZoneInfo(name) for name, _count in groups if name is not None}
    left: dict[str | None, float] = {}
    for name, count in groups:
        left[name] = left.get(name, 0.0) + count
    remaining = round(sum(left.values()))
    others_left = float(others)
    places = sorted((when, float(count)) for when, count in taken if when > now)
    timeline: list[Period] = []
    t = now

    def is_open(name: str | None) -> bool:
        if hours is None or name is None:
            return True
        return hours.next_opening(t, zones[name]) is None

    while sum(left.values()) > _DONE:
        if t - now > HORIZON:
            return Estimate(now, remaining, rate, None, _merged(timeline))
        places = [(when, count) for when, count in places if when > t]
        room = float("inf") if daily_limit is None else daily_limit - sum(c for _w, c in places)
        waiting = [n for n, count in left.items() if count > _DONE]
        opened = [n for n in waiting if is_open(n)]
        if room <= _DONE:
            t = places[0][0]  # the next place frees
            continue
        if not opened:
            assert hours is not None  # noqa: S101 - only sending hours close a group
            t = min(_opening(hours, t, zones[n]) for n in waiting if n is not None)
            continue
        mine = sum(left[n] for n in opened)
        demand = mine + others_left
        events = [t + timedelta(seconds=tier.BUCKET)]
        if hours is not None:
            events += [hours.next_closing(t, zones[n]) for n in opened if n is not None]
            events += [_opening(hours, t, zones[n]) for n in waiting if n not in opened and n]
        if places:
            events.append(places[0][0])
        can = min(demand, room)
        events.append(t + timedelta(seconds=can / rate))
        end = max(min(events), t + timedelta(microseconds=1))
        sent = min(rate * (end - t).total_seconds(), can)
        share = sent * mine / demand
        for name in opened:
            left[name] = max(left[name] - share * left[name] / mine, 0.0)
        others_left = max(others_left - (sent - share), 0.0)
        if daily_limit is not None:
            places.append((tier.frees_at(tier.bucket_of(t)), sent))
            places.sort()
        timeline.append(Period(t, end, share))
        t = end
    return Estimate(now, remaining, rate, t, _merged(timeline))


def _opening(hours: SendingHours, moment: datetime, zone: ZoneInfo) -> datetime:
    return hours.next_opening(moment, zone) or moment


def _merged(timeline: list[Period]) -> tuple[Period, ...]:
    """Periods that follow each other without a gap, as one."""
    merged: list[Period] = []
    for period in timeline:
        if merged and merged[-1].end == period.start:
            last = merged[-1]
            merged[-1] = Period(last.start, period.end, last.sent + period.sent)
        else:
            merged.append(period)
    return tuple(merged)


# -- one campaign ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignEstimate:
    """A campaign's estimate (:func:`campaign_estimate`) with what it rests on: ``rate_source``
    is ``"measured"`` (the campaign's throughput over the last minute), ``"RATE_LIMIT"`` or
    ``"assumed"`` (``ASSUMED_RATE``: no limit set and nothing measured yet);
    ``places_left`` is what the daily limit has left now (``None`` without one, or when its
    cache cannot be read: ``limit_unknown``)."""

    estimate: Estimate
    rate_source: str
    daily_limit: int | None
    places_left: int | None
    hours: SendingHours | None
    waiting_for_hours: int
    limit_unknown: bool = False

    @property
    def remaining(self) -> int:
        return self.estimate.remaining

    @property
    def finishes_at(self) -> datetime | None:
        return self.estimate.finishes_at

    @property
    def duration(self) -> timedelta | None:
        return self.estimate.duration

    @property
    def text(self) -> str:
        """One line for an operator: what is left, how long it takes and when it finishes."""
        if not self.remaining:
            return _("Nothing is left to send.")
        left = ngettext("%(count)d recipient left", "%(count)d recipients left", self.remaining) % {
            "count": self.remaining
        }
        if self.finishes_at is None:
            return _("%(left)s: it would take more than %(days)d days at this pace.") % {
                "left": left,
                "days": HORIZON.days,
            }
        finish = timezone.localtime(self.finishes_at).strftime("%Y-%m-%d %H:%M %Z")
        duration = self.duration or timedelta(0)
        if duration < timedelta(minutes=1):
            return _("%(left)s: under a minute, finishing about %(finish)s.") % {
                "left": left,
                "finish": finish,
            }
        return _("%(left)s: about %(duration)s, finishing about %(finish)s.") % {
            "left": left,
            "duration": human_duration(duration),
            "finish": finish,
        }

    @property
    def basis(self) -> str:
        """What the estimate rests on, for an operator."""
        rate = {
            "measured": _("measured %(rate).1f/s"),
            "RATE_LIMIT": _("RATE_LIMIT %(rate).1f/s"),
            "assumed": _("assumed %(rate).1f/s (no RATE_LIMIT, nothing measured yet)"),
        }[self.rate_source] % {"rate": self.estimate.rate}
        parts = [rate]
        if self.daily_limit is not None:
            if self.limit_unknown:
                parts.append(
                    _("DAILY_LIMIT %(limit)d (its cache cannot be read)")
                    % {"limit": self.daily_limit}
                )
            else:
                parts.append(
                    _("DAILY_LIMIT %(limit)d, %(left)d places left now")
                    % {"limit": self.daily_limit, "left": self.places_left or 0}
                )
        if self.hours is not None:
            parts.append(
                _("sending hours %(hours)s, %(waiting)d waiting for them")
                % {"hours": str(self.hours), "waiting": self.waiting_for_hours}
            )
        return "; ".join(parts)


def human_duration(duration: timedelta) -> str:
    """``2 days 5 hours``, ``3 hours 20 minutes``, ``4 minutes``, ``under a minute``."""
    minutes = int(duration.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours})
    if minutes and not days:
        parts.append(ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes})
    return " ".join(parts[:2]) or _("under a minute")


def campaign_estimate(campaign: Campaign, *, now: datetime | None = None) -> CampaignEstimate:
    """The campaign's estimate now (:func:`estimate`), from its recipients left, by time zone
    when it has sending hours (grouped by the first digits of their numbers), the rate, the
    account's daily limit and the places taken in it, and the account's other running
    campaigns. For a paused campaign: if it were resumed now."""
    conf = get_settings(campaign.account)
    moment = now or clock.now()
    hours = of_campaign(campaign)
    left = Message.objects.filter(campaign=campaign, status__in=LEFT)
    groups: list[tuple[str | None, int]]
    if hours is None:
        groups = [(None, left.count())]
    else:
        zones: Counter[str] = Counter()
        by_prefix = (
            left.annotate(prefix=Substr("destination_addr", 1, 7))
            .values("prefix")
            .annotate(count=Count("pk"), sample=Min("destination_addr"))
        )
        for row in by_prefix:
            zones[zone_name(row["sample"], conf)] += row["count"]
        groups = list(zones.items())
    rate, source = _rate(campaign, conf.RATE_LIMIT)
    others = (
        Message.objects.filter(
            account=campaign.account,
            campaign__status=Campaign.Status.RUNNING,
            status__in=LEFT,
        )
        .exclude(campaign=campaign)
        .count()
    )
    taken: list[tuple[datetime, int]] = []
    places_left = None
    unknown = False
    if conf.DAILY_LIMIT is not None:
        try:
            state = tier.state(conf, moment)
        except RateLimitUnavailable:
            unknown = True
        else:
            taken = [(tier.frees_at(bucket), count) for bucket, count in state.buckets]
            places_left = state.left
    found = estimate(
        now=moment,
        groups=groups,
        rate=rate,
        hours=hours,
        daily_limit=conf.DAILY_LIMIT,
        taken=taken,
        others=others,
    )
    waiting = campaign_progress(campaign).waiting_for_hours if hours is not None else 0
    return CampaignEstimate(found, source, conf.DAILY_LIMIT, places_left, hours, waiting, unknown)


def _rate(campaign: Campaign, limit: float | None) -> tuple[float, str]:
    """The campaign's measured throughput over the last minute while it runs, else
    ``RATE_LIMIT``, else ``ASSUMED_RATE``."""
    if campaign.status == Campaign.Status.RUNNING and campaign.started_at is not None:
        real_now = timezone.now()
        span = min(MEASURE_OVER, real_now - campaign.started_at).total_seconds()
        sent = Message.objects.filter(
            campaign=campaign, submitted_at__gte=real_now - MEASURE_OVER
        ).count()
        if sent >= MIN_MEASURED and span > 0:
            measured = sent / span
            return (min(measured, limit) if limit else measured), "measured"
    if limit is not None:
        return limit, "RATE_LIMIT"
    return ASSUMED_RATE, "assumed"
