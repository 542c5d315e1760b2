"""`audit`: the command line. Each command parses, calls one library function and renders.

User errors (a bad manifest, no cluster, a bad query) end with one line on stderr and exit
code 2, never a traceback. This process never imports TensorFlow; Ray actors do.
"""

from __future__ import annotations

import csv as csvlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audit.cli.demo import DEMO_SCENARIOS, run_demo
from audit.cli.render import (
    DiffFormat,
    err,
    fail,
    out,
    render_diff,
    render_summaries,
    render_validate,
)
from audit.errors import FlatlineError
from audit.fleet import FleetOptions, run_manifest
from audit.fleet.schedule import preview
from audit.io import locations
from audit.manifest.case import ALL_PROBES, MlflowPublish
from audit.manifest.schema import load_manifest
from audit.reports import diff_last, diff_runs, run_query, summarize
from audit.reports.html import write_html
from audit.zoo import SCENARIOS

app = typer.Typer(
    name="audit",
    help="Flatline: audit a fleet of Keras models. Does each output respond to its input, "
    "and if not, why?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ManifestArg = Annotated[Path, typer.Argument(help="A manifest (YAML), e.g. jobs/nightly.yaml.",
                                             show_default=False)]
OutputArg = Annotated[str, typer.Argument(
    help="The report folder or URI (the manifest's `output`), e.g. reports/ or s3://b/reports.",
    show_default=False)]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", envvar="RAY_ADDRESS",
    help="A Ray cluster (e.g. ray://head:10001 or head:6379); default: $RAY_ADDRESS, else an "
    "embedded local Ray on 127.0.0.1.", show_default=False)]
ConcurrencyOpt = Annotated[int | None, typer.Option(
    "--max-concurrency", min=1, help="Run at most this many cases at once (default: as many as "
    "the cluster's resources hold).", show_default=False)]
TrustOpt = Annotated[bool, typer.Option(
    "--trust-models", help="Load models that contain code (Keras safe_mode off). Only for "
    "models you trust: a model file is code.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """A Flatline error becomes one line on stderr and exit code 2 (`render.fail`)."""
    try:
        yield
    except FlatlineError as exc:
        raise fail(exc) from None


class _WarningLine(logging.Handler):
    """A report reader's warning (a skipped unreadable file) as one line on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]warning:[/yellow] {record.getMessage()}", markup=True,
                  highlight=False, soft_wrap=True)


@contextmanager
def _reading_warnings() -> Iterator[None]:
    """Show the report readers' warnings while a command reads a report."""
    logger = logging.getLogger("audit.reports")
    if any(isinstance(h, _WarningLine) for h in logger.handlers):  # nested: shown already
        yield
        return
    handler = _WarningLine(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------- commands


@app.command()
def demo(
    folder: Annotated[Path | None, typer.Option(
        "--folder", help="Build the zoo and write the report here (default: a temporary "
        "folder, removed afterwards).", show_default=False)] = None,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", help="Only this zoo scenario (repeat for more; default: a handful that "
        "shows every verdict).", show_default=False)] = None,
    every: Annotated[bool, typer.Option(
        "--all", help="The whole zoo: every scenario and model shape (a few minutes).")] = False,
    probes: Annotated[str | None, typer.Option(
        "--probes", help="Comma-separated probes (default: all), e.g. data,config,sensitivity.",
        show_default=False)] = None,
    address: AddressOpt = None,
    max_concurrency: ConcurrencyOpt = None,
) -> None:
    """Build a zoo of small broken models, audit them on an embedded Ray, print the findings."""

    if every and scenario:
        err.print("error: give --all or --scenario, not both", highlight=False)
        raise typer.Exit(2)
    chosen = tuple(p.strip() for p in probes.split(",")) if probes else ALL_PROBES
    names = None if every else list(scenario or DEMO_SCENARIOS)
    with _user_errors(), _folder(folder) as where, _build_progress(where, names) as built:
        result = run_demo(where, names, chosen, FleetOptions(
            address=address or None, max_concurrency=max_concurrency), on_built=built)
        render_summaries(_summaries(result.output, result.run_id))
    if not every and not scenario:

        err.print(f"that was {len(names or [])} of the zoo's {len(SCENARIOS)} scenarios; "
                  "`audit demo --all` audits them all", highlight=False)
    err.print(f"zoo, manifest and report are in {folder}" if folder else
              "pass --folder DIR to keep the zoo, its manifest and the report", highlight=False)
    raise typer.Exit(result.exit_code)


@contextmanager
def _build_progress(where: Path, names: list[str] | None) -> Iterator[Any]:
    """A progress bar on stderr while the zoo builds (a line per scenario in a log); yields
    the callback that counts a scenario built. The bar stops before the audit's own starts."""

    total = len(names) if names is not None else len(SCENARIOS)
    err.print(f"building {total} zoo scenarios in {where} ...", highlight=False)
    if not err.is_terminal:
        yield lambda name: err.print(f"built {name}", highlight=False)
        return
    bar = Progress(TextColumn("[bold]build zoo"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err)
    task = bar.add_task("build", total=total, last="")
    bar.start()

    def built(name: str) -> None:
        bar.update(task, advance=1, last=name)
        if bar.tasks[0].completed >= total:
            bar.stop()

    try:
        yield built
    finally:
        bar.stop()


@app.command()
def run(
    manifest: ManifestArg,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Finish run RUN: skip its cases that already have a report.",
        metavar="RUN", show_default=False)] = None,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", help="Use this run id (e.g. chosen by `audit submit`); finished cases of "
        "that run are skipped.", metavar="RUN", show_default=False)] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="With --resume: also re-run its cases that ended error or "
        "timeout (e.g. a worker that ran out of memory); their rows are replaced.")] = False,
    address: AddressOpt = None,
    max_concurrency: ConcurrencyOpt = None,
    trust_models: TrustOpt = False,
    output: Annotated[str | None, typer.Option(
        "--output", help="Write the report here instead of the manifest's `output`.",
        show_default=False)] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    temp_dir: Annotated[str | None, typer.Option(
        "--temp-dir", help="Parent of the workers' own temp folders, each removed when its "
        "worker ends (default: the workers' system temp folder).", show_default=False)] = None,
    publish: Annotated[list[PublishTarget] | None, typer.Option(
        "--publish", help="Also publish the results: mlflow tags each audited model version "
        "and logs the run (page and tables) to the experiment 'flatline' at "
        "$MLFLOW_TRACKING_URI, else the fleet's registry (a manifest's `publish:` wins).",
        show_default=False)] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Audit every case, reusing none (by default a case unchanged since "
        "an ok audit within `execution.reuse_days` under the same output is reused).")] = False,
    deadline: Annotated[str | None, typer.Option(
        "--deadline", help="No case starts that cannot finish by then; those end deferred "
        "and the next run starts with them: a clock time ('06:00', '06:00 Europe/Berlin'), "
        "an instant, or a duration ('5h'). Overrides `execution.deadline`.",
        show_default=False)] = None,
) -> None:
    """Audit every case of MANIFEST on Ray and write the Parquet report.

    Exit code: 0 all cases ok (reused ones included), 1 some failed (error/timeout) or the
    run was stopped, 2 the run could not start (e.g. a deadline already past), 3 nothing
    failed but the deadline deferred some cases.
    """



    try:
        to_mlflow = (MlflowPublish(uri=os.environ.get("MLFLOW_TRACKING_URI") or None)
                     if PublishTarget.mlflow in (publish or []) else None)
    except ValidationError as exc:  # credentials in MLFLOW_TRACKING_URI (not echoed back)
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        err.print(f"error: --publish mlflow: MLFLOW_TRACKING_URI: {message}", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(2) from None
    if resume and run_id and resume != run_id:
        err.print("error: --resume and --run-id name different runs; give one of them")
        raise typer.Exit(2)
    try:
        options = FleetOptions(
            run_id=resume or run_id, resume=bool(resume), retry_failed=retry_failed,
            address=address or None,
            max_concurrency=max_concurrency, trust_models=trust_models, output=output,
            progress=progress, temp_root=temp_dir, publish_mlflow=to_mlflow, fresh=fresh,
            deadline=deadline)
    except ValidationError as exc:  # e.g. an unparseable --deadline
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        err.print(f"error: --deadline: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    with _user_errors():
        result = run_manifest(manifest, options)
    state = "stopped" if result.stopped else "finished"
    out.print(f"run {result.run_id} {state}: {result.n_cases} cases, {result.n_ok} ok"
              + (f" ({result.n_reused} reused)" if result.n_reused else "")
              + f", {result.n_error} error, {result.n_timeout} timeout"
              + (f", {result.n_deferred} deferred (the next run starts with them)"
                 if result.n_deferred else "")
              + (f", {result.n_missing} not run" if result.n_missing else "")
              + (f" ({result.n_resumed} from before)" if result.n_resumed else ""),
              highlight=False)
    out.print(f"report: audit report {result.output} --run {result.run_id}", highlight=False)
    for line in result.published:
        out.print(line, highlight=False, soft_wrap=True)
    for line in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(line)}", markup=True, highlight=False,
                  soft_wrap=True)
    raise typer.Exit(result.exit_code)


@app.command()
def report(
    output: OutputArg,
    run_: Annotated[str | None, typer.Option(
        "--run", help="Only this run (default: every run under OUTPUT; with --html: the "
        "latest).", metavar="RUN", show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many cases per run.")] = 20,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write the run as one self-contained HTML page (charts, a sortable "
        "table, a section per case) to FILE.", metavar="FILE", show_default=False)] = None,
) -> None:
    """Summarize runs: verdicts and faults per run, the worst cases first, each with what to
    do about it, and what changed since the previous run of the same name."""
    if html is not None:

        with _user_errors(), _reading_warnings():
            page = write_html(output, run_, html)
        out.print(f"wrote {html} (run {page.run_id}, {page.n_cases} cases, "
                  f"{page.size_bytes / 1e6:.1f} MB)"
                  + (f"; {page.n_unreadable} unreadable files skipped"
                     if page.n_unreadable else ""), highlight=False, soft_wrap=True)
        return
    with _user_errors(), _reading_warnings():
        summaries = _summaries(output, run_, limit)
    render_summaries(summaries)


@app.command()
def query(
    output: OutputArg,
    sql: Annotated[str, typer.Argument(
        help="SQL over the views runs, cases, findings, metrics (DuckDB), e.g. "
        "\"select fault, count(*) from findings group by 1\".", show_default=False)],
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """Run SQL over a report with DuckDB (views: runs, cases, findings, metrics; each has a
    run_id column from its folder)."""

    with _user_errors(), _reading_warnings():
        result = run_query(output, sql)
    columns, rows = result.columns, result.rows
    if result.unreadable:
        err.print(f"{len(result.unreadable)} unreadable files skipped", highlight=False)
    if csv:

        writer = csvlib.writer(sys.stdout, lineterminator="\n")  # LF, as Unix tools read
        writer.writerow(columns)
        writer.writerows(rows)
        return
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


class PublishTarget(StrEnum):
    mlflow = "mlflow"


@app.command()
def diff(
    output: OutputArg,
    base: Annotated[str | None, typer.Argument(
        help="The earlier run (e.g. last night's).", show_default=False)] = None,
    new: Annotated[str | None, typer.Argument(
        help="The later run.", show_default=False)] = None,
    last: Annotated[str | None, typer.Option(
        "--last", help="Compare the two most recent runs of this run name instead.",
        metavar="NAME", show_default=False)] = None,
    format_: Annotated[DiffFormat, typer.Option(
        "--format", help="table, json or csv.")] = DiffFormat.table,
) -> None:
    """What changed between two runs: regressions, fixes, new and missing cases.

    Exit code: 0 nothing regressed, 1 something did, 2 bad input (e.g. an unknown run).
    """

    if (last is None) == (base is None or new is None) or (last and (base or new)):
        err.print("error: give BASE and NEW, or --last NAME")
        raise typer.Exit(2)
    with _user_errors(), _reading_warnings():
        result = diff_last(output, last) if last else diff_runs(output, base, new)
    render_diff(result, format_)
    raise typer.Exit(result.exit_code)


@app.command()
def validate(
    manifest: ManifestArg,
    trust_models: TrustOpt = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Say what `audit run --fresh` would do: reuse nothing.")] = False,
) -> None:
    """Check MANIFEST and list its cases (with their ids) without running anything, and say
    how many an `audit run` would reuse from earlier runs under its output."""

    with _user_errors(), _reading_warnings():
        loaded = load_manifest(manifest)
        cases = loaded.cases(trust_models=trust_models)
        night = preview(loaded.output_uri, cases, reuse_days=loaded.execution.reuse_days,
                        fresh=fresh)
    render_validate(loaded, cases, night, _exists)
    if night.note:
        err.print(f"[yellow]note:[/yellow] {escape(night.note)}", markup=True,
                  highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- rendering


@contextmanager
def _folder(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="flatline-demo-") as tmp:
        yield Path(tmp)


def _summaries(output: str, run_id: str | None, limit: int = 20) -> list[Any]:

    with _reading_warnings():
        return summarize(output, run_id, limit)


def _exists(location: str) -> bool:
    if not locations.is_local(location):
        return True  # not checked here: object stores are read by the workers
    return locations.exists(location)



# The shared-cluster commands (submit, status, logs, stop), registered explicitly: jobs_cli.py.
from audit.cli import jobs as jobs_cli  # noqa: E402

jobs_cli.register(app)


def main() -> None:  # pragma: no cover - `python -m audit.cli.app`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
