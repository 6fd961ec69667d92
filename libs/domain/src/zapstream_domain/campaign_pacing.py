"""Pure functions of a campaign: template rendering, pacing schedule, retry backoff, command ids.

Everything here takes the time as an argument (tests pass a fake clock) and
draws its "randomness" from a hash of stable ids, so a rebuilt runner computes
the same schedule as the one that crashed.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zapstream_contracts.campaign_payloads import Pacing

CAMPAIGN_SENDS = uuid.UUID("0b6a3c52-64a4-4b1e-9d59-2f4c3a7e1c11")
"""Namespace of campaign send command ids."""

TEMPLATE_FIELDS = ("nombre", "sustantivo", "grupo")
_PLACEHOLDER = re.compile(r"\{(nombre|sustantivo|grupo)\}")
_SPACES = re.compile(r"[ \t]{2,}")


def render(template: str, fields: Mapping[str, str | None]) -> str:
    """Fill ``{nombre}``, ``{sustantivo}`` and ``{grupo}``; other braces stay as written.

    A missing value renders as nothing, and the double space it would leave
    ("Hola  Carlos") is closed up.
    """
    had = _PLACEHOLDER.search(template) is not None
    out = _PLACEHOLDER.sub(lambda m: (fields.get(m.group(1)) or "").strip(), template)
    if had:
        out = "\n".join(_SPACES.sub(" ", line).strip() for line in out.split("\n"))
    return out


def send_command_id(campaign_id: str, recipient_id: str, attempt: int, part: int = 0) -> str:
    """The send command of one part of one attempt for one recipient: the same after any crash."""
    return str(uuid.uuid5(CAMPAIGN_SENDS, f"{campaign_id}\0{recipient_id}\0{attempt}\0{part}"))


def presence_command_id(campaign_id: str, recipient_id: str, attempt: int) -> str:
    return str(uuid.uuid5(CAMPAIGN_SENDS, f"{campaign_id}\0{recipient_id}\0{attempt}\0typing"))


def unit_interval(seed: str) -> float:
    """A number in [0, 1) drawn from ``seed`` (stable jitter)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def typing_seconds(pacing: Pacing, text_length: int) -> float:
    if not pacing.enabled or not pacing.typing:
        return 0.0
    return min(pacing.typing_max_s, text_length / pacing.typing_chars_per_s)


def retry_delay(pacing: Pacing, attempt: int) -> timedelta:
    """Exponential backoff after failed attempt ``attempt`` (1-based): base, 2·base, 4·base."""
    return timedelta(seconds=pacing.retry_base_s * 2 ** (max(attempt, 1) - 1))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _hm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours) % 24, int(minutes) % 60)


def quiet_until(pacing: Pacing, at: datetime, tz: str) -> datetime | None:
    """When ``at`` falls in the quiet hours (tenant's local time), the moment they end; else None."""
    if not pacing.enabled or pacing.quiet_start is None or pacing.quiet_end is None:
        return None
    start, end = _hm(pacing.quiet_start), _hm(pacing.quiet_end)
    if start == end:
        return None
    local = at.astimezone(zone(tz))
    now_t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= now_t < end
    else:  # wraps midnight, e.g. 21:00 → 08:00
        inside = now_t >= start or now_t < end
    if not inside:
        return None
    end_day = local.date()
    if start > end and now_t >= start:
        end_day = end_day + timedelta(days=1)
    naive_end = datetime.combine(end_day, end)
    return naive_end.replace(tzinfo=zone(tz)).astimezone(at.tzinfo)


def day_cap(pacing: Pacing, linked_at: datetime | None, at: datetime) -> int:
    """The day cap of a number: the warm-up step for its age in days, then ``per_day``."""
    if linked_at is None or not pacing.warmup:
        return pacing.per_day
    age = max(0, (at - linked_at).days)
    if age < len(pacing.warmup):
        return min(pacing.warmup[age], pacing.per_day)
    return pacing.per_day


def next_slot(
    pacing: Pacing,
    *,
    now: datetime,
    sends: Sequence[datetime],
    seed: str,
    tz: str,
    linked_at: datetime | None = None,
) -> datetime:
    """The earliest moment one number may start its next message.

    ``sends`` are the number's earlier send times, oldest first. The gap after
    the last is ``base_delay + jitter·u`` (u drawn from ``seed``); then the hour
    and day caps (the day cap follows the warm-up) and the quiet hours push it
    later. With pacing off it is ``now``.
    """
    if not pacing.enabled:
        return now
    slot = now
    if sends:
        gap = pacing.base_delay_s + pacing.jitter_s * unit_interval(seed)
        slot = max(slot, sends[-1] + timedelta(seconds=gap))
    for _ in range(16):  # each rule can only move the slot later; a few rounds settle it
        moved = False
        hour_ago = [s for s in sends if s > slot - timedelta(hours=1)]
        if len(hour_ago) >= pacing.per_hour:
            slot = hour_ago[len(hour_ago) - pacing.per_hour] + timedelta(hours=1)
            moved = True
        cap = day_cap(pacing, linked_at, slot)
        day_ago = [s for s in sends if s > slot - timedelta(days=1)]
        if len(day_ago) >= cap:
            slot = day_ago[len(day_ago) - cap] + timedelta(days=1)
            moved = True
        quiet_end = quiet_until(pacing, slot, tz)
        if quiet_end is not None:
            slot = quiet_end
            moved = True
        if not moved:
            break
    return slot
