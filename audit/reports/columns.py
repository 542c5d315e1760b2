"""The report's tables, column by column: the contract analysts query.

Each column is declared once, with its Arrow type and how its value is taken from the row's
source (a `RunRow`, a `CaseReport`, or a case with one of its findings or metrics). The
schemas and the row builders are derived from that list, so adding a column is one edit here
(plus a bump of `SCHEMA_VERSION` and a line in `SCHEMA_HISTORY`).

Changes are additive only: new columns are nullable and appended, so files written before a
column existed still read (DuckDB `union_by_name=true`, or `pyarrow.dataset` with the current
schema). The version a file was written with lives in its Parquet key-value metadata.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from audit.evidence.results import CaseReport, Finding, MetricRow

__all__ = [
    "COLUMNS",
    "KEY_COLUMNS",
    "METADATA_KEY",
    "SCHEMAS",
    "SCHEMA_HISTORY",
    "SCHEMA_VERSION",
    "TABLES",
    "Column",
    "RunRow",
    "case_tables",
    "detail_text",
    "finite",
    "json_text",
    "run_table",
]

SCHEMA_VERSION = "5"
METADATA_KEY = b"flatline.schema_version"
#: what each version added (all additive; files of every version read with today's code)
SCHEMA_HISTORY = {
    "1": "runs, cases (worker added later in 1), findings, metrics",
    "2": "cases.output (the audited head) and cases.node_id (Ray node id); metrics rows "
         "metric='details' with a probe's details as JSON in `detail`",
    "3": "cases.source: where a registry case came from (registry, model, version, run, and "
         "the source of each setting) as JSON",
    "4": "cases.model_format (how the model was loaded, e.g. a Keras 2 model rebuilt in "
         "Keras 3)",
    "5": "cases.reused_from (the run an unchanged case was audited in) and the case status "
         "`deferred` (not started: the run's deadline came first); runs.n_reused, "
         "runs.n_deferred and runs.deadline",
}
TABLES = ("runs", "cases", "findings", "metrics")


@dataclass(kw_only=True)
class CaseCounts:
    """How a run's cases ended: the one counter type of the fleet's result and the run row."""

    n_cases: int
    n_ok: int = 0  # reused cases included (they ended ok when they were audited)
    n_error: int = 0
    n_timeout: int = 0
    n_reused: int = 0  # of n_ok: rows taken from an earlier run, not audited again
    n_deferred: int = 0  # not started: the deadline came first

    @property
    def n_failed(self) -> int:
        return self.n_error + self.n_timeout


@dataclass(kw_only=True)
class RunRow(CaseCounts):
    """The run's one row, written when the run ends (finished or stopped)."""

    name: str
    status: str
    manifest: str
    output: str
    started_at: float
    finished_at: float
    n_skipped: int = 0
    n_missing: int = 0
    concurrency: int = 0
    ray_address: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    package_version: str = ""
    deadline: float | None = None  # epoch seconds; None: the run had none


@dataclass(frozen=True)
class Column:
    """One column: its name, Arrow type, and how a row's value is read from its source."""

    name: str
    type: pa.DataType
    value: Callable[[Any], Any]


def _ts(seconds: float) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC) if seconds else None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


def json_text(value: Any) -> str:
    """JSON the report stores in text columns; NaN and inf become null, so every reader's
    JSON parser (a browser's included) accepts it."""
    return json.dumps(finite(value), default=_json_default, sort_keys=True)


def detail_text(detail: str | dict[str, Any] | None) -> str | None:
    """A metric row's `detail` as stored: a note as it is, a probe's details as JSON."""
    return json_text(detail) if isinstance(detail, dict) else detail


def finite(value: Any) -> Any:
    """`value` with NaN and inf as None, so every reader's JSON parser accepts it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


_TS = pa.timestamp("us", tz="UTC")
# Sources: runs <- RunRow; cases <- CaseReport; findings <- (CaseReport, Finding);
# metrics <- (CaseReport, MetricRow). Append new columns at the end of their table.
COLUMNS: dict[str, tuple[Column, ...]] = {
    "runs": (
        Column("name", pa.string(), lambda r: r.name),
        Column("status", pa.string(), lambda r: r.status),  # finished | stopped
        Column("manifest", pa.string(), lambda r: r.manifest),
        Column("output", pa.string(), lambda r: r.output),
        Column("started_at", _TS, lambda r: _ts(r.started_at)),
        Column("finished_at", _TS, lambda r: _ts(r.finished_at)),
        Column("duration_s", pa.float64(), lambda r: r.finished_at - r.started_at),
        Column("n_cases", pa.int64(), lambda r: r.n_cases),
        Column("n_ok", pa.int64(), lambda r: r.n_ok),
        Column("n_error", pa.int64(), lambda r: r.n_error),
        Column("n_timeout", pa.int64(), lambda r: r.n_timeout),
        Column("n_skipped", pa.int64(), lambda r: r.n_skipped),
        # cases of the manifest with no report (a stopped run)
        Column("n_missing", pa.int64(), lambda r: r.n_missing),
        Column("concurrency", pa.int64(), lambda r: r.concurrency),
        Column("ray_address", pa.string(), lambda r: r.ray_address),
        # JSON: the manifest's settings and the run options
        Column("settings", pa.string(), lambda r: json_text(r.settings)),
        Column("package_version", pa.string(), lambda r: r.package_version),
        Column("n_reused", pa.int64(), lambda r: r.n_reused),  # v5
        Column("n_deferred", pa.int64(), lambda r: r.n_deferred),  # v5
        Column("deadline", _TS, lambda r: _ts(r.deadline or 0.0)),  # v5
    ),
    "cases": (
        Column("case_id", pa.string(), lambda c: c.case_id),
        Column("name", pa.string(), lambda c: c.name),
        Column("model", pa.string(), lambda c: c.model),
        Column("data", pa.string(), lambda c: c.data),
        Column("task", pa.string(), lambda c: c.task),
        Column("status", pa.string(), lambda c: c.status),
        Column("verdict", pa.string(), lambda c: c.verdict),
        Column("primary_fault", pa.string(), lambda c: c.primary_fault),
        Column("error", pa.string(), lambda c: c.error),
        Column("started_at", _TS, lambda c: _ts(c.started_at)),
        Column("finished_at", _TS, lambda c: _ts(c.finished_at)),
        Column("duration_s", pa.float64(), lambda c: c.duration_s),
        Column("attempts", pa.int64(), lambda c: c.attempts),
        Column("node", pa.string(), lambda c: c.node),
        Column("gpu_ids", pa.list_(pa.string()), lambda c: [str(g) for g in c.gpu_ids]),
        Column("worker", pa.string(), lambda c: c.worker),  # the Ray actor that ran it
        Column("output", pa.string(), lambda c: c.output),  # v2: the audited head
        Column("node_id", pa.string(), lambda c: c.node_id),  # v2: the Ray node id
        # v3: JSON, a registry case's origin (null for cases from files)
        Column("source", pa.string(),
               lambda c: None if c.source is None else json_text(c.source)),
        Column("model_format", pa.string(), lambda c: c.model_format),  # v4
        # v5: the run the case was audited in, when this run reused its rows
        Column("reused_from", pa.string(), lambda c: c.reused_from),
    ),
    "findings": (
        Column("case_id", pa.string(), lambda p: p[0].case_id),
        Column("fault", pa.string(), lambda p: p[1].fault),
        Column("severity", pa.string(), lambda p: p[1].severity),
        Column("confidence", pa.float64(), lambda p: float(p[1].confidence)),
        Column("confirmed", pa.bool_(), lambda p: bool(p[1].confirmed)),
        Column("probe", pa.string(), lambda p: p[1].probe),
        Column("evidence", pa.string(), lambda p: json_text(p[1].evidence)),
        Column("recommendation", pa.string(), lambda p: p[1].recommendation),
    ),
    "metrics": (
        Column("case_id", pa.string(), lambda p: p[0].case_id),
        Column("probe", pa.string(), lambda p: p[1].probe),
        Column("metric", pa.string(), lambda p: p[1].metric),
        Column("value", pa.float64(), lambda p: float(p[1].value)),
        Column("detail", pa.string(), lambda p: detail_text(p[1].detail)),
    ),
}

SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(c.name, c.type) for c in columns]) for table, columns in COLUMNS.items()
}

#: columns a file must have to count as this table's (anything else is a foreign file)
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("name", "status"),
    "cases": ("case_id", "name", "status", "verdict"),
    "findings": ("case_id", "fault"),
    "metrics": ("case_id", "probe", "metric"),
}


def _table(table: str, sources: list[Any]) -> pa.Table:
    rows = [{c.name: c.value(s) for c in COLUMNS[table]} for s in sources]
    return pa.Table.from_pylist(rows, schema=SCHEMAS[table])


def case_tables(report: CaseReport) -> dict[str, pa.Table]:
    """A case's three tables, in the order they are written (`cases` last: the done marker)."""
    findings: list[tuple[CaseReport, Finding]] = [(report, f) for f in report.findings]
    metrics: list[tuple[CaseReport, MetricRow]] = [(report, m) for m in report.metrics]
    return {"findings": _table("findings", findings), "metrics": _table("metrics", metrics),
            "cases": _table("cases", [report])}


def run_table(run: RunRow) -> pa.Table:
    return _table("runs", [run])
