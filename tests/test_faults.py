"""The fault vocabulary: every code one declared unit, nothing half declared, and no module
outside the vocabulary (and the zoo, which is labelled with codes) naming a code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audit import faults
from audit.faults import Code, Plan

ROOT = Path(__file__).resolve().parents[1]


def test_every_cause_has_a_rule_and_a_counterfactual_that_speaks_for_it() -> None:
    spoken_for = {code for cf in faults.PLANNING for code in (cf.tests, *cf.also_fixes) if code}
    assert faults.CAUSES and all(not f.judged_by and not f.symptom for f in faults.CAUSES)
    for fault in faults.CAUSES:
        assert fault.rule is not None, f"{fault.code}: no static rule"
        assert fault.code in spoken_for, f"{fault.code}: no counterfactual tests or fixes it"
        assert fault.meaning.endswith(".") and fault.fix, fault.code


def test_the_planning_order_holds_exactly_the_declared_counterfactuals() -> None:
    declared = [cf for fault in faults.FAULTS.values() for cf in fault.counterfactuals]
    assert sorted(cf.name for cf in declared) == sorted(cf.name for cf in faults.PLANNING)
    for fault in faults.FAULTS.values():
        for cf in fault.counterfactuals:
            assert cf.tests in (fault.code, None), f"{cf.name} is declared by {fault.code}"


def test_symptoms_have_no_rule_and_every_code_is_in_the_enum() -> None:
    assert set(faults.SYMPTOM_CODES) == {faults.symptom(kind).code
                                         for kind in ("flat", "short", "unskilled")}
    assert all(faults.get(code).rule is None for code in faults.SYMPTOM_CODES)
    assert list(faults.FAULTS) == list(Code)
    assert faults.judged_by("class_order").code not in faults.CAUSE_CODES
    with pytest.raises(KeyError, match="valid codes are"):
        faults.get("lr_to_low")


def test_a_plan_naming_an_unknown_code_fails_where_it_is_declared() -> None:
    with pytest.raises(ValueError):
        Plan("x", "a change", tests="lr_to_low")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Plan("x", "a change", also_fixes=("dead_relus",))  # type: ignore[arg-type]
    assert Plan("x", "a change", tests="dead_relu").tests is Code.DEAD_RELU  # type: ignore


def test_root_cause_rank_follows_the_vocabulary_order() -> None:
    ranks = [faults.root_cause_rank(code) for code in faults.CAUSE_CODES]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] == 1.0 and ranks[-1] == 0.0


def test_the_readme_documents_every_code() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [code for code in faults.FAULT_CODES if f"| `{code}` |" not in readme]
    assert not missing


def test_no_module_outside_the_vocabulary_and_the_zoo_names_a_fault_code() -> None:
    codes = "|".join(re.escape(c) for c in faults.FAULT_CODES)
    named = re.compile(rf"[\"']({codes})[\"']|Code\.[A-Z_]+")
    offenders = []
    for path in sorted((ROOT / "audit").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("audit/faults/", "audit/zoo")):
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if named.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
