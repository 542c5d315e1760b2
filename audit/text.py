"""Small text rules every layer shares: one-line error texts and safe run ids.

No dependencies, so spec, subject, reports, jobs and the fleet can all use it.
"""

from __future__ import annotations

import re

__all__ = ["RUN_ID_RULE", "is_run_id", "one_line"]

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RUN_ID_RULE = ("use letters, digits, '.', '_' and '-' (at most 100, starting with a letter or "
               "digit)")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to `limit` characters (its type if empty)."""
    text = " ".join(str(exc).split())
    return (text[:limit] + "...") if len(text) > limit else text or type(exc).__name__


def is_run_id(run_id: str) -> bool:
    """A run id becomes a Hive folder and a Ray submission id, so it must be a safe slug."""
    return bool(_RUN_ID.match(run_id))
