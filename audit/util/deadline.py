"""When a run must end: a deadline written as a clock time in a time zone (`"06:00"`,
`"06:00 Europe/Berlin"`, `"06:00+01:00"`, `"06:00Z"`), an instant (`"2026-12-06T06:00+01:00"`)
or a duration from the run's start (`"5h"`, `"90m"`, `"1h30m"`, `"45s"`).

A clock time is its next occurrence after the run starts (a nightly job started at 23:00 with
`"06:00"` has seven hours); a clock time without a zone is in the driver's local zone. An
instant already past, a duration of zero, and anything else are refused with one line saying
what was expected (`ValueError`; the manifest and the CLI turn it into their own error).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

__all__ = ["DEADLINE_FORMS", "check_deadline", "resolve_deadline"]

DEADLINE_FORMS = ("a clock time such as '06:00' or '06:00 Europe/Berlin', an instant such as "
                  "'2026-12-06T06:00+01:00', or a duration such as '5h', '90m' or '1h30m'")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(.*)$")


def check_deadline(text: str) -> str:
    """`text` unchanged when it parses as a deadline (now or later), else `ValueError`."""
    resolve_deadline(text, dt.datetime.now(dt.UTC).timestamp(), past_ok=True)
    return text


def resolve_deadline(text: str, start: float, past_ok: bool = False) -> float:
    """The deadline `text` as epoch seconds for a run starting at `start` (epoch seconds)."""
    value = text.strip()
    duration = _DURATION.fullmatch(value.lower())
    if value and duration and any(duration.groups()):
        hours, minutes, secs = (float(g or 0) for g in duration.groups())
        total = hours * 3600 + minutes * 60 + secs
        if total <= 0:
            raise ValueError(f"deadline {text!r} is no time at all; expected {DEADLINE_FORMS}")
        return start + total
    clock = _CLOCK.fullmatch(value)
    if clock:
        return _next_clock_time(text, clock, start)
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"deadline {text!r} is not a time; expected {DEADLINE_FORMS}") from None
    if instant.tzinfo is None:
        instant = instant.astimezone()  # the driver's local zone
    when = instant.timestamp()
    if when <= start and not past_ok:
        now = dt.datetime.fromtimestamp(start, dt.UTC).isoformat(timespec="seconds")
        raise ValueError(f"deadline {text!r} is already past (it is {now} now); give a later "
                         "time, or a clock time such as '06:00' (its next occurrence)")
    return when


def _next_clock_time(text: str, clock: re.Match[str], start: float) -> float:
    hour, minute, second = int(clock[1]), int(clock[2]), int(clock[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"deadline {text!r} is not a clock time (00:00 to 23:59)")
    zone = _zone(text, clock[4].strip())
    now = dt.datetime.fromtimestamp(start, zone)
    when = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
    if when <= now:
        when = (now + dt.timedelta(days=1)).replace(hour=hour, minute=minute, second=second,
                                                   microsecond=0)
    return when.timestamp()


def _zone(text: str, name: str) -> dt.tzinfo:
    if not name:
        local = dt.datetime.now().astimezone().tzinfo
        return local or dt.UTC
    if name.upper() in ("Z", "UTC"):
        return dt.UTC
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if offset:
        sign = 1 if offset[1] == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=int(offset[2]), minutes=int(offset[3])))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"deadline {text!r}: unknown time zone {name!r}; expected a zone "
                         "such as 'Europe/Berlin', 'UTC' or '+01:00'") from None
