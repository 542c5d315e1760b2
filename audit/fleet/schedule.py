"""Planning a night from what the earlier runs under the same output say: which cases need no
audit (reuse), what each of the others is expected to cost, and the order they start in.

- **Reuse.** A case whose id (its files' contents and every setting) matches an `ok` case of
  an earlier run written by this same Flatline version, audited at most `reuse_days` ago, is
  not audited: its rows are copied (`reports.history.copy_case`). The newest row of that id
  decides: an `error` or `timeout` there means the case is audited again. Runs written by
  another version, or before reuse existed (schema < 5), reuse nothing, and the plan says so
  once (`Night.note`).
- **Expected cost.** The newest earlier `duration_s` of a case of that name (audited there,
  or audited where a reused row came from), else an estimate from its files' size and its
  budget (`estimate_s`); never more than its time limit.
- **Order.** Cases deferred by the newest run that had them start first (the issue's "the
  next run starts with them"), then the rest longest first: on N slots, starting the longest
  jobs first bounds the batch's end by max(longest, total / N) plus a little (Graham's LPT).

Reading is bounded: the runs are read newest first and a file is opened only when its case id
is one the plan still needs, or its name's slug one whose cost is not known yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from audit.io import locations
from audit.manifest.case import CaseSpec, slug
from audit.reports import Store
from audit.reports.history import PastRun, case_rows, past_runs

__all__ = ["REUSE_SCHEMA", "Night", "Reuse", "estimate_s", "plan_night"]

#: the first schema version whose runs can be reused (the one that added `reused_from`)
REUSE_SCHEMA = 5
#: the estimate of a case never run before: a fixed part (load, class order) ...
BASE_S = 3.0
#: ... each probe but `retrain` ...
PROBE_S = 1.0
#: ... the counterfactuals' trainings at this many FLOPs a second, within `budget.max_seconds`
RETRAIN_FLOPS_PER_S = 5e9
#: ... and reading the files at this many bytes a second
READ_BYTES_PER_S = 50e6
_COLUMNS = ("name", "status", "duration_s", "finished_at", "reused_from")


@dataclass(frozen=True)
class Reuse:
    """Where a reused case's rows come from: the run holding them (`source_run`), the run it
    was audited in (`audited_in`, what `cases.reused_from` says) and when it ended."""

    source_run: str
    audited_in: str
    finished_at: float

    def line(self) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(self.finished_at))
        return f"reused from {self.audited_in} ({day})"


@dataclass
class Night:
    """A run's plan: the cases reused (written first), the cases to audit in starting order,
    each one's expected cost in seconds, and why nothing was reused when that is not obvious."""

    reused: dict[str, Reuse] = field(default_factory=dict)  # case id -> where from
    specs: dict[str, CaseSpec] = field(default_factory=dict)  # case id -> case, every one
    todo: list[CaseSpec] = field(default_factory=list)
    cost_s: dict[str, float] = field(default_factory=dict)  # case id -> expected seconds
    deferred_before: set[str] = field(default_factory=set)  # names the last run deferred
    note: str | None = None  # e.g. the earlier runs were written by an older Flatline

    def expected(self, spec: CaseSpec) -> float:
        return self.cost_s.get(spec.case_id, estimate_s(spec))


def plan_night(store: Store, cases: list[CaseSpec], *, run_id: str, version: str,
               reuse_days: float, fresh: bool = False, now: float | None = None,
               longest_first: bool = True) -> Night:
    """Which of `cases` to reuse and in what order to audit the others (see the module)."""
    now = time.time() if now is None else now
    runs = [r for r in past_runs(store) if r.run_id != run_id]
    reusing = not fresh and reuse_days > 0
    night = Night(note=_why_nothing(store, runs, version) if reusing else None,
                  specs={c.case_id: c for c in cases})
    usable = {r.run_id for r in runs if _same_flatline(r, version)} if reusing else set()
    wanted = {c.case_id for c in cases}
    costs: dict[str, float] = {}  # name slug -> seconds
    deferred: set[str] = set()
    decided: set[str] = set()  # ids whose newest row was read
    slugs = {slug(c.name, 48): c.name for c in cases}
    cutoff = now - reuse_days * 86400
    for run in runs:
        open_ids = wanted - decided if run.run_id in usable else set()
        open_slugs = set(slugs) - set(costs)
        if not open_ids and not open_slugs:
            break
        for row in _rows(store, run, open_ids, open_slugs):
            _learn(row, run, open_ids, decided, cutoff, night, costs, deferred, slugs)
    for spec in cases:
        if spec.case_id in night.reused:
            continue
        known = costs.get(slug(spec.name, 48))
        limit = spec.time_limit_s or float("inf")
        night.cost_s[spec.case_id] = min(known if known is not None else estimate_s(spec),
                                         limit)
        night.todo.append(spec)
    night.deferred_before = deferred & {c.name for c in night.todo}
    if longest_first:  # a stable sort: equal costs keep the manifest's order
        night.todo.sort(key=lambda c: (c.name not in night.deferred_before,
                                       -night.cost_s[c.case_id]))
    return night


def _rows(store: Store, run: PastRun, ids: set[str], slugs: set[str]) -> list[dict[str, Any]]:
    """The rows of `run` a plan still needs: those of `ids`, or of a name slug in `slugs`."""
    return case_rows(store, run.run_id, _COLUMNS,
                     lambda cid: cid in ids or cid.rsplit("-", 1)[0] in slugs)


def _learn(row: dict[str, Any], run: PastRun, open_ids: set[str], decided: set[str],
           cutoff: float, night: Night, costs: dict[str, float], deferred: set[str],
           slugs: dict[str, str]) -> None:
    """What one earlier row says: a reuse (its id's newest row, ok and recent enough), a
    cost (its name's newest duration) or a case that run deferred."""
    status, case_id = row.get("status"), row["case_id"]
    key = case_id.rsplit("-", 1)[0]
    if status == "deferred":  # the newest row of its name: the next run starts with it
        if key in slugs and key not in costs:
            deferred.add(slugs[key])
        return
    if key in slugs and key not in costs and row.get("duration_s"):
        costs[key] = float(row["duration_s"])
    if case_id not in open_ids or case_id in decided:
        return
    decided.add(case_id)
    finished = row.get("finished_at") or 0.0
    if status == "ok" and finished >= cutoff:
        night.reused[case_id] = Reuse(run.run_id, row.get("reused_from") or run.run_id,
                                      finished)


def _same_flatline(run: PastRun, version: str) -> bool:
    return (run.schema_version or 0) >= REUSE_SCHEMA and run.package_version == version


def _why_nothing(store: Store, runs: list[PastRun], version: str) -> str | None:
    """One line when the output holds finished runs but none this Flatline may reuse."""
    finished = [r for r in runs if r.schema_version is not None]
    if not finished or any(_same_flatline(r, version) for r in finished):
        return None
    seen = sorted({f"{r.package_version or '?'} (schema {r.schema_version})" for r in finished})
    return (f"nothing reused: the {len(finished)} earlier run(s) under {store.output} were "
            f"written by another Flatline ({', '.join(seen)}); reuse needs flatline-audit "
            f"{version} (schema {REUSE_SCHEMA} or later), so every case is audited")


def estimate_s(spec: CaseSpec) -> float:
    """What a case never run before is expected to cost: a fixed part, a second a probe, its
    files read, and the counterfactuals' training budget when `retrain` runs."""
    probes = [p for p in spec.probes if p != "retrain"]
    total = BASE_S + PROBE_S * len(probes)
    if "retrain" in spec.probes:
        total += min(spec.budget.max_seconds, spec.budget.flops / RETRAIN_FLOPS_PER_S)
    files = [spec.data] if spec.registry is not None else [spec.model, spec.data]
    total += sum(_size(f) for f in files) / READ_BYTES_PER_S
    return min(total, spec.time_limit_s or float("inf"))


def _size(location: str) -> int:
    """A file's (or folder's) size from its listing, never its contents; 0 when unknown."""
    import pyarrow.fs as pafs

    try:
        fs, path = locations.filesystem(location)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            listing = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            return sum(int(f.size or 0) for f in listing if f.type == pafs.FileType.File)
        return int(info.size or 0)
    except (OSError, ValueError):
        return 0


def preview(manifest_output: str, cases: list[CaseSpec], *, reuse_days: float,
            fresh: bool = False) -> Night:
    """What a run of `cases` into `manifest_output` would reuse and in what order it would
    audit the rest (what `audit validate` says); reads the report's rows, never a model."""
    from audit.fleet.progress import package_version  # the fleet's own: rich, not Ray

    return plan_night(Store(manifest_output), cases, run_id="", version=package_version(),
                      reuse_days=reuse_days, fresh=fresh)
