"""The report: four Parquet tables analysts query, written per case, atomically, anywhere.

Layout (the contract; see DESIGN.md "The report"):

    <output>/runs/run_id=<RUN>/run.parquet              one row per run, written last
    <output>/cases/run_id=<RUN>/<case_id>.parquet       one row per case
    <output>/findings/run_id=<RUN>/<case_id>.parquet    one row per finding (maybe none)
    <output>/metrics/run_id=<RUN>/<case_id>.parquet     one row per probe metric

`run_id` lives only in the Hive folder name. Everything goes through `pyarrow.fs`, so `output`
may be a local folder or an s3://, gs://, file:// URI. A local file is written to a temporary
sibling and renamed with `os.replace`; on an object store the final key is written in one PUT.
A case's `cases` file is written after its findings and metrics, so its presence means the case
is complete (that is what `--resume` looks for).

No TensorFlow and no Ray here.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit import faults
from audit.objectstore import with_retries
from audit.results import CaseReport

__all__ = [
    "SCHEMAS",
    "SCHEMA_VERSION",
    "CaseLine",
    "ReportError",
    "RunRow",
    "RunSummary",
    "Store",
    "check_run_id",
    "connect",
    "query",
    "summarize",
]

SCHEMA_VERSION = "1"
METADATA_KEY = b"flatline.schema_version"
TABLES = ("runs", "cases", "findings", "metrics")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema([
        ("name", pa.string()),
        ("status", pa.string()),  # finished | stopped
        ("manifest", pa.string()),
        ("output", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("n_cases", pa.int64()),
        ("n_ok", pa.int64()),
        ("n_error", pa.int64()),
        ("n_timeout", pa.int64()),
        ("n_skipped", pa.int64()),
        ("n_missing", pa.int64()),  # cases of the manifest with no report (a stopped run)
        ("concurrency", pa.int64()),
        ("ray_address", pa.string()),
        ("settings", pa.string()),  # JSON: the manifest's settings and the run options
        ("package_version", pa.string()),
    ]),
    "cases": pa.schema([
        ("case_id", pa.string()),
        ("name", pa.string()),
        ("model", pa.string()),
        ("data", pa.string()),
        ("task", pa.string()),
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("primary_fault", pa.string()),
        ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("attempts", pa.int64()),
        ("node", pa.string()),
        ("gpu_ids", pa.list_(pa.string())),
        ("worker", pa.string()),  # the Ray actor that ran the case (additive column)
    ]),
    "findings": pa.schema([
        ("case_id", pa.string()),
        ("fault", pa.string()),
        ("severity", pa.string()),
        ("confidence", pa.float64()),
        ("confirmed", pa.bool_()),
        ("probe", pa.string()),
        ("evidence", pa.string()),
        ("recommendation", pa.string()),
    ]),
    "metrics": pa.schema([
        ("case_id", pa.string()),
        ("probe", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("detail", pa.string()),
    ]),
}

VERDICT_ORDER = {"flat": 0, "impaired": 1, "error": 2, "healthy": 3}


class ReportError(ValueError):
    """The output cannot be used (bad location, no reports there, bad SQL); one line."""


def check_run_id(run_id: str) -> str:
    """A run id becomes a Hive folder name, so it must be a safe slug."""
    if not _RUN_ID.match(run_id):
        raise ReportError(
            f"run id {run_id!r} is not a safe slug; use letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return run_id


# ---------------------------------------------------------------- rows


@dataclass
class RunRow:
    """The run's one row, written when the run ends (finished or stopped)."""

    name: str
    status: str
    manifest: str
    output: str
    started_at: float
    finished_at: float
    n_cases: int
    n_ok: int = 0
    n_error: int = 0
    n_timeout: int = 0
    n_skipped: int = 0
    n_missing: int = 0
    concurrency: int = 0
    ray_address: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    package_version: str = ""


def _ts(seconds: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC) if seconds else None


def _case_table(report: CaseReport) -> pa.Table:
    row = {
        "case_id": report.case_id, "name": report.name, "model": report.model,
        "data": report.data, "task": report.task, "status": report.status,
        "verdict": report.verdict, "primary_fault": report.primary_fault,
        "error": report.error, "started_at": _ts(report.started_at),
        "finished_at": _ts(report.finished_at), "duration_s": report.duration_s,
        "attempts": report.attempts, "node": report.node,
        "gpu_ids": [str(g) for g in report.gpu_ids],
        "worker": report.worker,
    }
    return pa.Table.from_pylist([row], schema=SCHEMAS["cases"])


def _findings_table(report: CaseReport) -> pa.Table:
    rows = [{
        "case_id": report.case_id, "fault": f.fault, "severity": f.severity,
        "confidence": float(f.confidence), "confirmed": bool(f.confirmed), "probe": f.probe,
        "evidence": json.dumps(f.evidence, default=_json_default, sort_keys=True),
        "recommendation": f.recommendation,
    } for f in report.findings]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["findings"])


def _metrics_table(report: CaseReport) -> pa.Table:
    rows = [{"case_id": report.case_id, "probe": m.probe, "metric": m.metric,
             "value": float(m.value), "detail": m.detail} for m in report.metrics]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["metrics"])


def _run_table(run: RunRow) -> pa.Table:
    row = {
        "name": run.name, "status": run.status, "manifest": run.manifest, "output": run.output,
        "started_at": _ts(run.started_at), "finished_at": _ts(run.finished_at),
        "duration_s": run.finished_at - run.started_at, "n_cases": run.n_cases,
        "n_ok": run.n_ok, "n_error": run.n_error, "n_timeout": run.n_timeout,
        "n_skipped": run.n_skipped, "n_missing": run.n_missing,
        "concurrency": run.concurrency, "ray_address": run.ray_address,
        "settings": json.dumps(run.settings, default=_json_default, sort_keys=True),
        "package_version": run.package_version,
    }
    return pa.Table.from_pylist([row], schema=SCHEMAS["runs"])


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


# ---------------------------------------------------------------- the store


def _single_put(uri: str) -> str:
    """An s3:// URI whose writes go up in one PUT per file (pyarrow otherwise sends a small
    file as a three-request multipart upload, which a killed worker can leave half-open)."""
    if not uri.startswith("s3://") or "allow_delayed_open" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}allow_delayed_open=true"


class Store:
    """The report folder or bucket prefix at `output`, read and written through `pyarrow.fs`."""

    def __init__(self, output: str) -> None:
        self.output = output
        try:
            if "://" in output and not output.startswith("file://"):
                self.fs, self.root = with_retries(*pafs.FileSystem.from_uri(_single_put(output)))
            else:
                self.fs = pafs.LocalFileSystem()
                self.root = os.path.abspath(output.removeprefix("file://"))
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise ReportError(f"output {output!r}: cannot open ({_one_line(exc)})") from None
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def folder(self, table: str, run_id: str) -> str:
        return f"{self.root}/{table}/run_id={check_run_id(run_id)}"

    # writing -------------------------------------------------------------

    def write_case(self, run_id: str, report: CaseReport) -> None:
        """Write one case's findings, metrics, then its cases row (the 'done' marker)."""
        name = f"{_safe_name(report.case_id)}.parquet"
        self._write(f"{self.folder('findings', run_id)}/{name}", _findings_table(report))
        self._write(f"{self.folder('metrics', run_id)}/{name}", _metrics_table(report))
        self._write(f"{self.folder('cases', run_id)}/{name}", _case_table(report))

    def write_run(self, run_id: str, run: RunRow) -> None:
        """Write the run row; its presence means the run ended."""
        self._write(f"{self.folder('runs', run_id)}/run.parquet", _run_table(run))

    def _write(self, path: str, table: pa.Table) -> None:
        table = table.replace_schema_metadata({METADATA_KEY: SCHEMA_VERSION.encode()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        payload = buffer.getvalue()
        try:
            if self.local:
                _replace_local(path, payload)
            else:
                with self.fs.open_output_stream(path) as out:  # one object, appears whole
                    out.write(payload)
        except OSError as exc:
            raise ReportError(f"cannot write {path} under {self.output}: {_one_line(exc)}"
                              ) from None

    # reading -------------------------------------------------------------

    def case_ids(self, run_id: str) -> set[str]:
        """Ids of the cases of `run_id` that have a complete report (for `--resume`)."""
        return {p.rsplit("/", 1)[-1].removesuffix(".parquet")
                for p in self._parquet_files(self.folder("cases", run_id))}

    def case_status_by_id(self, run_id: str, ids: set[str] | None = None) -> dict[str, str]:
        """How each of the run's cases (or of those in `ids`) ended, by case id."""
        statuses: dict[str, str] = {}
        for path in self._parquet_files(self.folder("cases", run_id)):
            case_id = path.rsplit("/", 1)[-1].removesuffix(".parquet")
            if ids is None or case_id in ids:
                status = pq.read_table(path, columns=["status"], filesystem=self.fs).column(0)
                statuses[case_id] = str(status[0])
        return statuses

    def case_statuses(self, run_id: str, ids: set[str] | None = None) -> dict[str, int]:
        """How many of the run's cases (or of those in `ids`) ended in each status."""
        counts: dict[str, int] = {}
        for status in self.case_status_by_id(run_id, ids).values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def run_ids(self) -> list[str]:
        """Runs with any case or run row under this output, oldest folder name first."""
        ids: set[str] = set()
        for table in ("runs", "cases"):
            selector = pafs.FileSelector(f"{self.root}/{table}", allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                base = info.path.rsplit("/", 1)[-1]
                if info.type == pafs.FileType.Directory and base.startswith("run_id="):
                    ids.add(base.removeprefix("run_id="))
        return sorted(ids)

    def has_files(self, table: str) -> bool:
        return bool(self._parquet_files(f"{self.root}/{table}", recursive=True, limit=1))

    def _parquet_files(self, folder: str, recursive: bool = False,
                       limit: int | None = None) -> list[str]:
        selector = pafs.FileSelector(folder, recursive=recursive, allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            base = info.path.rsplit("/", 1)[-1]
            if info.type == pafs.FileType.File and base.endswith(".parquet") and \
                    not base.startswith("."):
                found.append(info.path)
                if limit and len(found) >= limit:
                    break
        return found


def _replace_local(path: str, payload: bytes) -> None:
    """Write a temporary sibling, then rename it over `path`: readers see all or nothing."""
    folder, name = path.rsplit("/", 1)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as out:
            out.write(payload)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _safe_name(case_id: str) -> str:
    if not _RUN_ID.match(case_id):
        raise ReportError(f"case id {case_id!r} is not a safe file name")
    return case_id


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:240] + "...") if len(text) > 240 else text or type(exc).__name__


# ---------------------------------------------------------------- DuckDB


def connect(output: str) -> Any:
    """A DuckDB connection with views runs, cases, findings, metrics over `output`.

    A local output is read with the documented `read_parquet(..., hive_partitioning=true,
    union_by_name=true)`; an object store through `pyarrow.dataset` over the same filesystem
    (so DuckDB needs no credentials or extensions of its own).
    """
    import duckdb

    store = Store(output)
    con = duckdb.connect()
    for table in TABLES:
        _create_view(con, store, table)
    return con


def _create_view(con: Any, store: Store, table: str) -> None:
    if not store.has_files(table):
        empty = SCHEMAS[table].append(pa.field("run_id", pa.string())).empty_table()
        con.register(f"_{table}_empty", empty)
        con.execute(f"create view {table} as select * from _{table}_empty")
    elif store.local:
        pattern = f"{store.root}/{table}/**/*.parquet".replace("'", "''")
        con.execute(f"create view {table} as select * from read_parquet('{pattern}', "
                    "hive_partitioning=true, union_by_name=true)")
    else:
        import pyarrow.dataset as ds

        partitioning = ds.partitioning(pa.schema([("run_id", pa.string())]), flavor="hive")
        dataset = ds.dataset(f"{store.root}/{table}", filesystem=store.fs, format="parquet",
                             partitioning=partitioning,
                             schema=SCHEMAS[table].append(pa.field("run_id", pa.string())),
                             exclude_invalid_files=False, ignore_prefixes=[".", "_"])
        con.register(f"_{table}_arrow", dataset)
        con.execute(f"create view {table} as select * from _{table}_arrow")


def query(output: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run `sql` over the report's views; returns column names and rows."""
    import duckdb

    con = connect(output)
    try:
        result = con.execute(sql)
        columns = [d[0] for d in result.description or []]
        return columns, result.fetchall()
    except duckdb.Error as exc:
        raise ReportError(f"query failed: {_one_line(exc)}") from None
    finally:
        con.close()


# ---------------------------------------------------------------- summaries


@dataclass
class CaseLine:
    """One case in a summary: what it is, what was found, what to do."""

    name: str
    status: str
    verdict: str
    primary_fault: str | None
    recommendation: str


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



def summarize(output: str, run_id: str | None = None, limit: int = 20) -> list[RunSummary]:
    """Summaries of the runs under `output` (or just `run_id`), oldest first; in each, the
    worst cases first (flat, impaired, error, healthy), at most `limit` of them."""
    store = Store(output)
    known = store.run_ids()
    if not known:
        raise ReportError(f"{output}: no reports here (expected runs/ and cases/ folders)")
    if run_id is not None and run_id not in known:
        raise ReportError(f"{output}: no run {run_id!r}; runs are {known}")
    con = connect(output)
    try:
        ids = [run_id] if run_id else known
        summaries = [_summary(con, rid, limit) for rid in ids]
    finally:
        con.close()
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
    order = " ".join(f"when '{v}' then {i}" for v, i in VERDICT_ORDER.items())
    rows = con.execute(
        "select name, status, verdict, primary_fault, error from cases where run_id = ? "
        f"order by case verdict {order} else 9 end, name", [run_id]).fetchall()
    first = con.execute("select min(started_at) from cases where run_id = ?", [run_id]).fetchone()
    lines = [CaseLine(name, status, verdict, fault, _recommendation(status, fault, error))
             for name, status, verdict, fault, error in rows[:limit]]
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
    )


def _recommendation(status: str, fault: str | None, error: str | None) -> str:
    if status != "ok":
        return error or status
    if fault is None:
        return "-"
    try:
        return faults.get(fault).fix
    except KeyError:
        return f"unknown fault code {fault!r}"

