"""The report: four Parquet tables analysts query, written per case, atomically, anywhere.

One module per job: `schema` (the tables, column by column), `store` (atomic writes, listing,
reading), `query` (DuckDB views), `summary` (the terminal summary), `diff` (run to run),
`charts` (what the page draws), `html` (the page), `style` (verdict colours). The contract
is in docs/report.md.

No TensorFlow and no Ray here. Today's public names are re-exported, so
`from audit.reports import X` keeps working.
"""

from __future__ import annotations

from audit.reports.columns import (
    METADATA_KEY,
    SCHEMA_HISTORY,
    SCHEMA_VERSION,
    SCHEMAS,
    TABLES,
    RunRow,
)
from audit.reports.diff import (
    SKILL_NOISE_FLOOR,
    CaseChange,
    CaseState,
    RunDiff,
    diff_last,
    diff_runs,
    last_two_runs,
    previous_run,
)
from audit.reports.query import QueryResult, connect, query, run_query
from audit.reports.store import ReportError, Store, Unreadable, check_run_id
from audit.reports.style import VERDICT_COLORS, VERDICT_ORDER, verdict_color, verdict_rank
from audit.reports.summary import CaseLine, RunSummary, summarize

__all__ = [
    "METADATA_KEY",
    "SCHEMAS",
    "SCHEMA_HISTORY",
    "SCHEMA_VERSION",
    "SKILL_NOISE_FLOOR",
    "TABLES",
    "VERDICT_COLORS",
    "VERDICT_ORDER",
    "CaseChange",
    "CaseLine",
    "CaseState",
    "QueryResult",
    "ReportError",
    "RunDiff",
    "RunRow",
    "RunSummary",
    "Store",
    "Unreadable",
    "check_run_id",
    "connect",
    "diff_last",
    "diff_runs",
    "last_two_runs",
    "previous_run",
    "query",
    "run_query",
    "summarize",
    "verdict_color",
    "verdict_rank",
]
