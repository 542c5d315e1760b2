"""Runs summarized for the terminal: verdicts and faults, the worst cases first, each with
what to do, and what changed since the previous run of the same name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit import faults
from audit.reports.diff import RunDiff, diff_with, previous_run, with_previous
from audit.reports.query import connect
from audit.reports.store import Store, Unreadable
from audit.reports.style import VERDICT_ORDER

__all__ = ["CaseLine", "RunSummary", "recommendation", "reused_line", "summarize",
           "verdict_sql_order"]


@dataclass
class CaseLine:
    """One case in a summary: what it is, what was found, what to do."""

    name: str
    status: str
    verdict: str
    primary_fault: str | None
    recommendation: str
    reused: str | None = None  # "reused from RUN (date)" when this run reused the case


@dataclass
class RunSummary:
    """One run as `audit report` shows it."""

    run_id: str
    name: str | None
    status: str  # finished | stopped | incomplete (no run row yet)
    started_at: Any
    duration_s: float | None
    n_cases: int
    verdicts: dict[str, int]
    statuses: dict[str, int]
    faults: dict[str, int]
    cases: list[CaseLine]
    more: int = 0  # cases left out of `cases`
    since: RunDiff | None = None  # against the previous run of the same name, if any
    unreadable: list[Unreadable] = field(default_factory=list)  # skipped files of this run
    n_reused: int = 0  # cases whose rows came from the run they were audited in

    @property
    def n_deferred(self) -> int:
        return self.statuses.get("deferred", 0)

    @property
    def n_failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in ("ok", "deferred"))


def verdict_sql_order(column: str = "verdict") -> str:
    """A SQL expression sorting the worst verdicts first."""
    whens = " ".join(f"when '{v}' then {i}" for v, i in VERDICT_ORDER.items())
    return f"case {column} {whens} else 9 end"


def summarize(output: str | Store, run_id: str | None = None, limit: int = 20
              ) -> list[RunSummary]:
    """Summaries of the runs under `output` (or just `run_id`), oldest first; in each, the
    worst cases first (flat, impaired, error, healthy), at most `limit` of them."""
    store = output if isinstance(output, Store) else Store(output)
    known = store.known_runs(run_id)
    con = connect(store, runs=with_previous(store, run_id) if run_id else None)
    try:
        ids = [run_id] if run_id else known
        summaries = [_summary(con, rid, limit) for rid in ids]
    finally:
        con.close()
    for s in summaries:
        s.unreadable = [u for u in store.unreadable if f"/run_id={s.run_id}/" in u.path]
    return sorted(summaries, key=lambda s: (s.started_at is None, str(s.started_at)))


def _summary(con: Any, run_id: str, limit: int) -> RunSummary:
    run = con.execute("select name, status, started_at, duration_s from runs where run_id = ?",
                      [run_id]).fetchone()
    verdicts = dict(con.execute("select verdict, count(*) from cases where run_id = ? "
                                "group by 1", [run_id]).fetchall())
    statuses = dict(con.execute("select status, count(*) from cases where run_id = ? "
                                "group by 1", [run_id]).fetchall())
    fault_counts = dict(con.execute(
        "select primary_fault, count(*) from cases where run_id = ? and primary_fault is not null"
        " group by 1 order by 2 desc, 1", [run_id]).fetchall())
    rows = con.execute(
        "select name, status, verdict, primary_fault, error, reused_from, finished_at "
        f"from cases where run_id = ? order by {verdict_sql_order()}, name", [run_id]).fetchall()
    first = con.execute("select min(started_at) from cases where run_id = ?", [run_id]).fetchone()
    lines = [CaseLine(name, status, verdict, fault, recommendation(status, fault, error),
                      reused_line(reused, finished))
             for name, status, verdict, fault, error, reused, finished in rows[:limit]]
    before = previous_run(con, run_id)
    return RunSummary(
        run_id=run_id,
        name=run[0] if run else None,
        status=run[1] if run else "incomplete",
        started_at=run[2] if run else first[0],
        duration_s=run[3] if run else None,
        n_cases=len(rows),
        verdicts=verdicts,
        statuses=statuses,
        faults=fault_counts,
        cases=lines,
        more=max(0, len(rows) - limit),
        n_reused=sum(1 for row in rows if row[5]),
        since=diff_with(con, before, run_id) if before else None,
    )


def reused_line(reused_from: str | None, finished_at: Any) -> str | None:
    """"reused from RUN (date)": where a reused case was audited, and when; None otherwise."""
    if not reused_from:
        return None
    day = finished_at.strftime("%Y-%m-%d") if hasattr(finished_at, "strftime") else "?"
    return f"reused from {reused_from} ({day})"


def recommendation(status: str, fault: str | None, error: str | None) -> str:
    """What to do about a case: the fault's fix, or why the case could not be audited."""
    if status != "ok":
        return error or status
    if fault is None:
        return "-"
    try:
        return faults.get(fault).fix
    except KeyError:
        return f"unknown fault code {fault!r}"
