"""What the earlier runs under an output hold, read without a query engine: their run rows
(who wrote them, when), the rows of their cases (for reuse and for each case's expected cost),
and a case's rows copied into a new run, marked with the run it was audited in.

Reads go through the `Store`, so a file that cannot be read is skipped with its one warning,
as everywhere else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit.errors import ReportError
from audit.reports.columns import METADATA_KEY, SCHEMAS
from audit.reports.store import Store, _safe_name
from audit.util.text import one_line

__all__ = ["PastRun", "case_rows", "copy_case", "past_runs"]


@dataclass(frozen=True)
class PastRun:
    """An earlier run's row: its id, name, start, the Flatline that wrote it and the schema
    version of its files (None for a run still going or that crashed: no run row)."""

    run_id: str
    name: str | None
    started_at: float | None
    package_version: str | None
    schema_version: int | None


def past_runs(store: Store) -> list[PastRun]:
    """Every run under the output, newest first (runs without a run row last, by id)."""
    found: list[PastRun] = []
    for run_id in store.run_ids():
        path = f"{store.folder('runs', run_id)}/run.parquet"
        row: dict[str, Any] = {}
        version = None
        if store.fs.get_file_info(path).type == pafs.FileType.File and \
                store._readable("runs", path):
            try:
                with store.fs.open_input_file(path) as handle:
                    parquet = pq.ParquetFile(handle)
                    meta = parquet.schema_arrow.metadata or {}
                    names = [c for c in ("name", "started_at", "package_version")
                             if c in parquet.schema_arrow.names]
                    row = parquet.read(columns=names).to_pylist()[0]
                version = int(meta.get(METADATA_KEY, b"0").decode() or 0)
            except (OSError, pa.ArrowException, ValueError, IndexError) as exc:
                store._skip(path, one_line(exc, 200))
        started = row.get("started_at")
        found.append(PastRun(run_id, row.get("name"),
                             started.timestamp() if isinstance(started, dt.datetime) else None,
                             row.get("package_version"), version))
    return sorted(found, key=lambda r: (r.started_at is not None, r.started_at or 0, r.run_id),
                  reverse=True)


def case_rows(store: Store, run_id: str, columns: tuple[str, ...],
              wanted: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
    """The `columns` of the run's cases rows (of the case ids `wanted` accepts), None where a
    file written before a column existed lacks it; times as epoch seconds. Only the files of
    wanted ids are opened."""
    rows = []
    listed = sorted(store._parquet_files(store.folder("cases", run_id)))
    for path in listed:
        case_id = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        if (wanted is not None and not wanted(case_id)) or not store._readable("cases", path):
            continue
        try:
            with store.fs.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle)
                have = [c for c in columns if c in parquet.schema_arrow.names]
                table = parquet.read(columns=have).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            store._skip(path, one_line(exc, 200))
            continue
        for row in table:
            rows.append({"case_id": case_id, **{c: _plain(row.get(c)) for c in columns}})
    return rows


def copy_case(store: Store, source_run: str, run_id: str, case_id: str,
              reused_from: str) -> None:
    """Write the case's findings, metrics and then its cases row (marked `reused_from`) from
    `source_run` into `run_id`: the new run's tables stay complete on their own. Raises
    `ReportError` when a file cannot be read or written (the caller audits the case
    instead)."""
    name = f"{_safe_name(case_id)}.parquet"
    tables = {}
    for table in ("findings", "metrics", "cases"):
        path = f"{store.folder(table, source_run)}/{name}"
        try:
            with store.fs.open_input_file(path) as handle:
                tables[table] = pq.ParquetFile(handle).read()
        except (OSError, pa.ArrowException) as exc:
            raise ReportError(f"cannot reuse {case_id} from run {source_run}: "
                              f"{one_line(exc, 200)}") from None
    cases = tables["cases"]
    values = pa.array([reused_from] * cases.num_rows, pa.string())
    if "reused_from" in cases.schema.names:
        cases = cases.set_column(cases.schema.get_field_index("reused_from"), "reused_from",
                                 values)
    else:
        cases = cases.append_column("reused_from", values)
    tables["cases"] = cases
    for table, rows in tables.items():
        store._write(f"{store.folder(table, run_id)}/{name}", _current(table, rows))


def _current(table: str, rows: pa.Table) -> pa.Table:
    """`rows` in today's schema of `table` (columns an older file lacks are null)."""
    schema = SCHEMAS[table]
    arrays = [rows.column(f.name).cast(f.type) if f.name in rows.schema.names
              else pa.nulls(rows.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _plain(value: Any) -> Any:
    return value.timestamp() if isinstance(value, dt.datetime) else value
