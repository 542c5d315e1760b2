"""How the command line renders what the library returns: run summaries, what changed since
the last run, a diff between runs (a table, JSON, or CSV with LF line ends), and verdict colours.
"""

from __future__ import annotations

import csv as csvlib
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from audit.errors import FlatlineError, JobsError
from audit.reports import verdict_color
from audit.util.text import one_line


class LiveConsole(Console):
    """A console sized when it prints (`COLUMNS`, else the terminal, else 80), not when this
    module was imported: rich reads `COLUMNS` once, in `Console()`, so a long-lived process
    (a notebook, a test session, `CliRunner(env=...)`) would keep the first width forever."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._width = options.get("width")  # None: rich's `size` reads COLUMNS each time
        self._height = options.get("height")


out = LiveConsole()
err = LiveConsole(stderr=True)


#: exit code of a command that could not run at all (bad manifest, no cluster, bad query)
USER_ERROR = 2


def fail(exc: FlatlineError) -> typer.Exit:
    """The one place a Flatline error becomes what the user sees: one line on stderr (the
    message, with whitespace folded) and the exit code scripts test (`JobsError` carries its
    own). Raise what it returns."""
    err.print(f"[red]error:[/red] {one_line(exc, 2000)}", markup=True, highlight=False,
              soft_wrap=True)
    return typer.Exit(exc.exit_code if isinstance(exc, JobsError) else USER_ERROR)


class DiffFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def render_summaries(summaries: list[Any]) -> None:
    for s in summaries:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(s.verdicts.items()))
        title = (f"run {s.run_id} ({s.name or '?'}, {s.status}): {s.n_cases} cases: {counts}"
                 + (f"; {s.n_failed} failed" if s.n_failed else "")
                 + (f"; {s.n_reused} reused from earlier runs" if s.n_reused else "")
                 + (f"; {s.n_deferred} deferred by the deadline (the next run starts with "
                    "them)" if s.n_deferred else ""))
        table = Table("case", "verdict", "fault", "recommendation", title=title,
                      title_justify="left", show_lines=False)
        for line in s.cases:
            name = line.name + (f"\n[dim]{line.reused}[/dim]" if line.reused else "")
            table.add_row(name, verdict_style(line.verdict), line.primary_fault or "-",
                          line.recommendation)
        if s.more:
            table.add_row(f"... {s.more} more", "", "", "")
        out.print(table)
        if s.faults:
            out.print("faults: " + ", ".join(f"{f} x{n}" for f, n in s.faults.items()),
                      highlight=False)
        if s.since is not None:
            render_since(s.since)
        if s.unreadable:
            out.print(f"{len(s.unreadable)} unreadable files skipped", highlight=False)


def render_since(change: Any, shown: int = 5) -> None:
    """A few lines: what changed since the previous run of the same name."""
    counts = change.counts()
    out.print(f"since run {change.base}: {counts['regression']} regressed, {counts['fix']} "
              f"fixed, {counts['new']} new, {counts['missing']} missing, "
              f"{counts['unchanged']} unchanged", highlight=False)
    listed = [c for c in change.changes if c.kind in ("regression", "fix")]
    for c in listed[:shown]:
        mark = "[red]regressed[/]" if c.kind == "regression" else "[green]fixed[/]"
        out.print(f"  {mark} {c.name}: {c.reason}", highlight=False)
    if len(listed) > shown:
        out.print(f"  ... {len(listed) - shown} more: audit diff OUTPUT {change.base} "
                  f"{change.new}", highlight=False)


def render_diff(result: Any, format_: DiffFormat) -> None:
    if format_ is DiffFormat.json:

        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    rows = [c.row() for c in result.changes]
    if format_ is DiffFormat.csv:

        fields = ["kind", "name", "base_verdict", "new_verdict", "base_fault", "new_fault",
                  "base_skill", "new_skill", "reason"]
        writer = csvlib.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    counts = result.counts()
    table = Table("change", "case", "verdict", "fault", "why", title_justify="left",
                  title=f"{result.base} -> {result.new}: " + ", ".join(
                      f"{n} {k}" for k, n in counts.items()))
    for row in rows:
        verdicts = f"{row['base_verdict'] or '-'} -> {verdict_style(row['new_verdict'] or '-')}"
        table.add_row(row["kind"], row["name"], verdicts,
                      f"{row['base_fault'] or '-'} -> {row['new_fault'] or '-'}", row["reason"])
    out.print(table)
    if result.unreadable:
        err.print(f"{len(result.unreadable)} unreadable files skipped", highlight=False)


def verdict_style(verdict: str) -> str:
    return f"[{verdict_color(verdict).rich}]{verdict}[/]"


def render_validate(loaded: Any, cases: list[Any], night: Any,
                    exists: Callable[[str], bool]) -> None:
    """`audit validate`: each case with its id, whether its files are here, and what a run
    would do with it (reuse it, or audit it at about its expected cost); then the counts."""
    table = Table("name", "case_id", "model", "data", "probes", "run", title=loaded.name)
    table.columns[1].overflow = "fold"
    missing = failed = 0
    for case in cases:
        reuse = night.reused.get(case.case_id)
        plan = reuse.line() if reuse else f"audit (~{night.expected(case):.0f}s)"
        if case.error:  # found while expanding its source (e.g. a registry's unknown alias)
            failed += 1
            table.add_row(case.name, case.case_id, case.model,
                          f"[red]error: {escape(case.error)}[/red]", ",".join(case.probes),
                          plan)
            continue
        # a registry's model version is fetched by the worker, not checked here
        flags = [case.registry is not None or exists(case.model), exists(case.data)]
        missing += flags.count(False)
        table.add_row(case.name, case.case_id, _mark(case.model, flags[0]),
                      _mark(case.data, flags[1]), ",".join(case.probes), plan)
    out.print(table)
    out.print(f"{len(cases)} cases; output {loaded.output_uri}; {len(night.reused)} would be "
              "reused from earlier runs"
              + (f"; {missing} files not found here (those cases will end as error)"
                 if missing else "")
              + (f"; {failed} cases already failed (they will end as error)"
                 if failed else ""), highlight=False)


def _mark(location: str, found: bool) -> str:
    return location if found else f"{location} [red](not found)[/red]"
