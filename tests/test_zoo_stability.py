"""Stable across seeds: every plain-MLP zoo scenario gets the same primary fault under three
audit seeds (the retrain split, shuffling and initial weights change with the seed).

The first seed is the session's `zoo_reports`; the other two re-audit the built files. The
production-shaped scenarios (conv, recurrent, exports) cost too much for the suite: they are
checked by `python benchmarks/stability.py` (every scenario, three seeds)."""

from __future__ import annotations

import pytest
from conftest import ZOO_WORKERS

from audit.zoo import SCENARIOS, audit_zoo_seeds

MLP = [name for name, s in SCENARIOS.items() if s.shape == "mlp"]
OTHER_SEEDS = (1, 2)


@pytest.fixture(scope="module")
def other_seeds(zoo_cases: dict) -> dict[int, dict]:
    """The plain-MLP scenarios audited under the other seeds, spread over the zoo's workers."""
    return audit_zoo_seeds([zoo_cases[name] for name in MLP], OTHER_SEEDS, workers=ZOO_WORKERS)


@pytest.mark.parametrize("name", MLP)
def test_the_primary_fault_is_the_same_under_three_seeds(name: str, zoo_reports: dict,
                                                         other_seeds: dict) -> None:
    primaries = [zoo_reports[name].primary_fault]
    for seed in OTHER_SEEDS:
        report = other_seeds[seed][name]
        assert report.status == "ok", report.error
        primaries.append(report.primary_fault)
    assert primaries == [SCENARIOS[name].expected_fault] * 3
