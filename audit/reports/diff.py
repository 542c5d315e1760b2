"""What changed between two runs: regressions, fixes, new and missing cases.

Cases are matched by name (unique within a manifest). A registry's case is named after its
model (`{model}` by default) while its id holds the version, so a new version of a model is
matched to the old one. A case regressed when:

- it was healthy and is now flat, impaired or error;
- it has a primary fault it did not have (a new or a different one);
- its skill (the `sensitivity` probe's skill over the trivial predictor) dropped by more than
  its seed noise: twice the spread (sample std) of the skills the `retrain` probe reached with
  the model's own config over its seeds, in either run, and never less than `SKILL_NOISE_FLOOR`
  (healthy models are not retrained, so their noise is that floor).

A case is fixed when it was not healthy and now is. `audit diff` exits 1 when anything
regressed, so a scheduler can gate on it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from audit.evidence import keys
from audit.reports.query import connect
from audit.reports.store import ReportError, Store, Unreadable

__all__ = [
    "SKILL_NOISE_FLOOR",
    "CaseChange",
    "CaseState",
    "RunDiff",
    "diff_last",
    "diff_runs",
    "last_two_runs",
    "previous_run",
    "with_previous",
]

#: the smallest skill drop that counts as a regression (skill is 1 for a perfect model and
#: 0 for the trivial predictor)
SKILL_NOISE_FLOOR = 0.05
NOISE_SIGMAS = 2.0
KINDS = ("regression", "fix", "new", "missing")


@dataclass(frozen=True)
class CaseState:
    """A case as one run saw it."""

    case_id: str
    status: str
    verdict: str
    primary_fault: str | None
    skill: float | None
    skill_noise: float | None  # std of the own-config retraining skills over seeds


@dataclass(frozen=True)
class CaseChange:
    """One case that changed between the runs, and why it counts."""

    kind: str  # regression | fix | new | missing
    name: str
    reason: str
    base: CaseState | None
    new: CaseState | None

    def row(self) -> dict[str, Any]:
        """A flat row for CSV and tables."""
        b, n = self.base, self.new
        return {
            "kind": self.kind, "name": self.name,
            "base_verdict": b.verdict if b else None, "new_verdict": n.verdict if n else None,
            "base_fault": b.primary_fault if b else None,
            "new_fault": n.primary_fault if n else None,
            "base_skill": b.skill if b else None, "new_skill": n.skill if n else None,
            "reason": self.reason,
        }


@dataclass
class RunDiff:
    """Two runs compared, case by case."""

    base: str
    new: str
    changes: list[CaseChange]
    unchanged: int
    unreadable: list[Unreadable] = field(default_factory=list)

    def of(self, kind: str) -> list[CaseChange]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def regressed(self) -> bool:
        return any(c.kind == "regression" for c in self.changes)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    def counts(self) -> dict[str, int]:
        return {kind: len(self.of(kind)) for kind in KINDS} | {"unchanged": self.unchanged}

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "new": self.new, "counts": self.counts(),
                "changes": [asdict(c) for c in self.changes],
                "unreadable": [u.path for u in self.unreadable]}


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _states(con: Any, run_id: str) -> dict[str, CaseState]:
    skill = keys.Sensitivity.SKILL
    skills = dict(con.execute(
        "select case_id, any_value(value) from metrics where run_id = ? and "
        "probe = ? and metric = ? group by 1", [run_id, skill.probe, skill.metric]).fetchall())
    # the own config's spread over seeds: how much a skill moves by chance
    noise = dict(con.execute(
        "select case_id, stddev_samp(value) from metrics where run_id = ? and probe = ? "
        "and starts_with(metric, ?) and isfinite(value) group by 1",
        [run_id, keys.Retrain.ORIGINAL_SKILL.probe,
         keys.seed_skill_prefix(keys.BASELINE)]).fetchall())
    rows = con.execute("select case_id, name, status, verdict, primary_fault from cases "
                       "where run_id = ? order by name, case_id", [run_id]).fetchall()
    states: dict[str, CaseState] = {}
    for case_id, name, status, verdict, fault in rows:
        key = name if name not in states else f"{name} ({case_id})"
        states[key] = CaseState(case_id, status, verdict, fault, _finite(skills.get(case_id)),
                                _finite(noise.get(case_id)))
    return states


def _tolerance(base: CaseState, new: CaseState) -> float:
    spreads = [s for s in (base.skill_noise, new.skill_noise) if s is not None]
    return max(SKILL_NOISE_FLOOR, NOISE_SIGMAS * max(spreads, default=0.0))


def compare(name: str, base: CaseState, new: CaseState) -> CaseChange | None:
    """The change of one case between two runs, or None when nothing worth saying changed."""
    if base.verdict == "healthy" and new.verdict != "healthy":
        why = f"healthy -> {new.verdict}"
        if new.primary_fault:
            why += f" ({new.primary_fault})"
        return CaseChange("regression", name, why, base, new)
    if new.primary_fault and new.primary_fault != base.primary_fault:
        was = base.primary_fault or "none"
        return CaseChange("regression", name,
                          f"new primary fault {new.primary_fault} (was {was})", base, new)
    if base.skill is not None and new.skill is not None:
        tolerance = _tolerance(base, new)
        if base.skill - new.skill > tolerance:
            return CaseChange("regression", name,
                              f"skill {base.skill:.3f} -> {new.skill:.3f} (more than the seed "
                              f"noise {tolerance:.3f})", base, new)
    if base.verdict != "healthy" and new.verdict == "healthy":
        was = base.verdict + (f" ({base.primary_fault})" if base.primary_fault else "")
        return CaseChange("fix", name, f"{was} -> healthy", base, new)
    return None


def _check_runs(store: Store, *run_ids: str) -> None:
    known = store.run_ids()
    for run_id in run_ids:
        if run_id not in known:
            raise ReportError(f"{store.output}: no run {run_id!r}; runs are {known}")


def diff_runs(output: str | Store, base: str, new: str) -> RunDiff:
    """Compare run `new` against run `base` under `output` (a folder or an object store)."""
    store = output if isinstance(output, Store) else Store(output)
    _check_runs(store, base, new)
    con = connect(store, runs=(base, new))
    try:
        return diff_with(con, base, new, store.unreadable)
    finally:
        con.close()


def diff_with(con: Any, base: str, new: str, unreadable: list[Unreadable] | None = None
              ) -> RunDiff:
    """`diff_runs` over an open connection (the summary and the HTML page reuse theirs)."""
    before, after = _states(con, base), _states(con, new)
    changes: list[CaseChange] = []
    unchanged = 0
    for name in sorted(before.keys() | after.keys()):
        b, n = before.get(name), after.get(name)
        if b is not None and b.status == "deferred":  # not audited then: nothing to compare
            b = None
        if n is not None and n.status == "deferred":
            changes.append(CaseChange("missing", name, "deferred by the deadline: not audited "
                                      "in the new run", b, None))
            continue
        if b is None:
            changes.append(CaseChange("new", name, f"new case ({n.verdict})", None, n))
        elif n is None:
            changes.append(CaseChange("missing", name, "not in the new run", b, None))
        elif (change := compare(name, b, n)) is not None:
            changes.append(change)
        else:
            unchanged += 1
    changes.sort(key=lambda c: (KINDS.index(c.kind), c.name))
    return RunDiff(base, new, changes, unchanged, list(unreadable or []))


def previous_run(con: Any, run_id: str) -> str | None:
    """The latest run of the same name that started before `run_id` (needs both run rows)."""
    row = con.execute(
        "select p.run_id from runs p join runs r on p.name = r.name "
        "where r.run_id = ? and p.run_id <> r.run_id and p.started_at < r.started_at "
        "order by p.started_at desc limit 1", [run_id]).fetchone()
    return row[0] if row else None


def with_previous(store: Store, run_id: str) -> list[str]:
    """`run_id` and the previous run of its name, if any: the runs a report of it reads."""
    con = connect(store, runs=())
    try:
        before = previous_run(con, run_id)
    finally:
        con.close()
    return [run_id] if before is None else [before, run_id]


def last_two_runs(output: str | Store, name: str) -> tuple[str, str]:
    """The two most recent runs named `name` (by start time), older first."""
    store = output if isinstance(output, Store) else Store(output)
    con = connect(store, runs=())
    try:
        rows = con.execute("select run_id from runs where name = ? order by started_at desc "
                           "limit 2", [name]).fetchall()
        names = [r[0] for r in con.execute("select distinct name from runs order by 1")
                 .fetchall()]
    finally:
        con.close()
    if len(rows) < 2:
        raise ReportError(f"{store.output}: run name {name!r} has {len(rows)} finished run(s), "
                          f"need 2 to compare; names are {names}")
    return rows[1][0], rows[0][0]


def diff_last(output: str | Store, name: str) -> RunDiff:
    """Compare the two most recent runs named `name` (one reading of the output)."""
    store = output if isinstance(output, Store) else Store(output)
    return diff_runs(store, *last_two_runs(store, name))
