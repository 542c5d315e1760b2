"""How verdicts look and sort, in one place: the terminal (rich) and the HTML page use it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VERDICT_COLORS", "VERDICT_ORDER", "VerdictColor", "verdict_color", "verdict_rank"]

#: worst first: a flat output is what the tool exists to find
VERDICT_ORDER = {"flat": 0, "impaired": 1, "error": 2, "healthy": 3, "deferred": 4}


@dataclass(frozen=True)
class VerdictColor:
    """A verdict's colour as a rich style name (terminal) and a CSS hex (HTML charts)."""

    rich: str
    hex: str


VERDICT_COLORS: dict[str, VerdictColor] = {
    "flat": VerdictColor("red", "#d62728"),
    "impaired": VerdictColor("yellow", "#e6a700"),
    "error": VerdictColor("magenta", "#9467bd"),
    "healthy": VerdictColor("green", "#2ca02c"),
    "deferred": VerdictColor("bright_black", "#7f7f7f"),  # not audited: the deadline came
}
UNKNOWN = VerdictColor("white", "#7f7f7f")


def verdict_rank(verdict: str | None) -> int:
    """Sort key: flat, impaired, error, healthy, deferred, then anything else."""
    return VERDICT_ORDER.get(verdict or "", len(VERDICT_ORDER))


def verdict_color(verdict: str | None) -> VerdictColor:
    return VERDICT_COLORS.get(verdict or "", UNKNOWN)
