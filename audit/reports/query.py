"""DuckDB over a report: the views runs, cases, findings, metrics (each with `run_id`).

A local output is read with the documented `read_parquet(..., hive_partitioning=true,
union_by_name=true)`; an object store through `pyarrow.dataset` over the same filesystem (so
DuckDB needs no credentials or extensions of its own). Either way the views list the readable
files explicitly (the `Store` skips unreadable or foreign ones) and always carry every column
of today's schema, so queries naming a new column work over old reports too.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from audit.reports.columns import SCHEMAS, TABLES
from audit.reports.store import ReportError, Store, Unreadable
from audit.util.text import one_line

__all__ = ["QueryResult", "connect", "query", "run_query"]


@dataclass
class QueryResult:
    """Rows of a query, and the files skipped because they could not be read."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    unreadable: list[Unreadable] = field(default_factory=list)


def connect(output: str | Store, runs: Collection[str] | None = None) -> Any:
    """A DuckDB connection with views runs, cases, findings, metrics over `output`.

    With `runs`, the cases, findings and metrics views hold only those runs (their files
    alone are listed and checked: a report of one night need not open every night's files);
    the runs view always holds every run.
    """
    import duckdb

    store = output if isinstance(output, Store) else Store(output)
    con = duckdb.connect()
    for table in TABLES:
        if runs is None or table == "runs":
            files = store.files(table)
        else:
            files = [f for run_id in sorted(set(runs)) for f in store.files(table, run_id)]
        _create_view(con, store, table, files)
    return con


def _full_schema(table: str) -> pa.Schema:
    return SCHEMAS[table].append(pa.field("run_id", pa.string()))


def _create_view(con: Any, store: Store, table: str, files: list[str]) -> None:
    con.register(f"_{table}_empty", _full_schema(table).empty_table())
    if not files:
        con.execute(f"create view {table} as select * from _{table}_empty")
    elif store.local:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"create view {table} as select * from _{table}_empty union all by name "
                    f"select * from read_parquet([{listed}], hive_partitioning=true, "
                    "union_by_name=true, hive_types={'run_id': VARCHAR})")
    else:
        import pyarrow.dataset as ds

        partitioning = ds.partitioning(pa.schema([("run_id", pa.string())]), flavor="hive")
        dataset = ds.dataset(files, filesystem=store.fs, format="parquet",
                             partitioning=partitioning,
                             partition_base_dir=f"{store.root}/{table}",
                             schema=_full_schema(table))
        con.register(f"_{table}_arrow", dataset)
        con.execute(f"create view {table} as select * from _{table}_arrow")


def run_query(output: str | Store, sql: str) -> QueryResult:
    """Run `sql` over the report's views; the result names the files it had to skip."""
    import duckdb

    store = output if isinstance(output, Store) else Store(output)
    con = connect(store)
    try:
        result = con.execute(sql)
        columns = [d[0] for d in result.description or []]
        return QueryResult(columns, result.fetchall(), store.unreadable)
    except duckdb.Error as exc:
        raise ReportError(f"query failed: {one_line(exc, 240)}") from None
    finally:
        con.close()


def query(output: str | Store, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run `sql` over the report's views; returns column names and rows."""
    result = run_query(output, sql)
    return result.columns, result.rows
