"""Calibration on the zoo: is a finding right for its scenario, and per confidence bin how many
findings there are and what share are right (the suite checks the README's confidence claim on
this table).
"""

from __future__ import annotations

import itertools
from typing import Any

from audit.zoo.scenarios import SCENARIOS, Scenario

#: confidence bins of the calibration table (lower edges; the last bin includes 1.0)
CONFIDENCE_BINS = (0.0, 0.4, 0.6, 0.8)


def finding_is_right(scenario: Scenario, fault: str) -> bool:
    """A finding is right when it names the scenario's fault (or a two-change bug's other
    fault); on a healthy scenario no finding is right."""
    return fault in {scenario.expected_fault, scenario.contributing} - {None}


def calibration(findings: dict[str, list[tuple[str, float]]]) -> list[dict[str, Any]]:
    """Per confidence bin: how many findings (scenario -> [(fault, confidence)]) and the share
    that are right."""
    rows = []
    edges = [*CONFIDENCE_BINS, 1.0 + 1e-9]
    for low, high in itertools.pairwise(edges):
        hits = [finding_is_right(SCENARIOS[name], fault)
                for name, found in findings.items() for fault, conf in found
                if low <= conf < high]
        rows.append({"bin": f"[{low:.1f}, {min(high, 1.0):.1f}{']' if high > 1 else ')'}",
                     "low": low, "findings": len(hits),
                     "right": sum(hits),
                     "accuracy": sum(hits) / len(hits) if hits else float("nan")})
    return rows
