"""Small text rules every layer shares: one-line error texts, durations and safe
run ids.

No dependencies, so spec, subject, reports, jobs and the fleet can all use it.
"""

from __future__ import annotations

import re

__all__ = ["RUN_ID_RULE", "duration", "is_run_id", "one_line"]

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RUN_ID_RULE = ("use letters, digits, '.', '_' and '-' (at most 100, starting with a letter or "
               "digit)")


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """An exception's message (or a text) on one line, cut to `limit` characters; an
    exception with no message is its type's name."""
    text = " ".join(str(exc).split())
    if not text and isinstance(exc, BaseException):
        return type(exc).__name__
    return (text[:limit] + "...") if len(text) > limit else text


def duration(seconds: float | None) -> str:
    """A duration as people read it ("2m 05s", "1h 02m 03s"); "-" when unknown."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def is_run_id(run_id: str) -> bool:
    """A run id becomes a Hive folder and a Ray submission id, so it must be a safe slug."""
    return bool(_RUN_ID.match(run_id))
