"""Stable across seeds: every plain-MLP zoo scenario gets the same primary fault under three
audit seeds (the retrain split, shuffling and initial weights change with the seed).

The first seed is the session's `zoo_reports`; the other two re-audit the built files. The
production-shaped scenarios (conv, recurrent, exports) cost too much for the suite: they are
checked by `python benchmarks/stability.py` (every scenario, three seeds)."""

from __future__ import annotations

import pytest

from audit.engine import audit_case
from audit.spec import CaseSpec
from audit.zoo import SCENARIOS

MLP = [name for name, s in SCENARIOS.items() if s.shape == "mlp"]
OTHER_SEEDS = (1, 2)


@pytest.mark.parametrize("name", MLP)
def test_the_primary_fault_is_the_same_under_three_seeds(name: str, zoo_cases: dict,
                                                         zoo_reports: dict) -> None:
    case = zoo_cases[name]
    primaries = [zoo_reports[name].primary_fault]
    for seed in OTHER_SEEDS:
        report = audit_case(CaseSpec(**case.spec_fields(), seed=seed))
        assert report.status == "ok", report.error
        primaries.append(report.primary_fault)
    assert primaries == [SCENARIOS[name].expected_fault] * 3
