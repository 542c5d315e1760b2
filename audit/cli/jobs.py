"""`audit submit | status | logs | stop`: the shared-cluster commands, added to the main app.

`register(app)` adds them explicitly (importing this module changes nothing). Each command
reads the environment once (address, token), calls one function of `audit.jobs`, and renders
the result; a `JobsError` becomes one line on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from audit import jobs
from audit.cli.render import fail
from audit.errors import FlatlineError
from audit.util.text import duration, one_line

DEFAULT_ADDRESS = "http://127.0.0.1:8265"

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="The cluster's dashboard, e.g. http://head:8265 "
        "(default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, then http://127.0.0.1:8265).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add the cluster commands to `app`."""
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("logs")(logs)
    app.command("stop")(stop)


def cluster_config(address: str | None,
                   wait_s: float = jobs.DEFAULT_WAIT_S) -> jobs.ClusterConfig:
    """The address (flag, then Ray's variables, then localhost) and the token, from the env;
    transient errors are retried for `wait_s`."""
    resolved = (
        address
        or os.environ.get("RAY_API_SERVER_ADDRESS")
        or os.environ.get("RAY_ADDRESS")
        or DEFAULT_ADDRESS
    )
    token, source = jobs.find_token()
    return jobs.ClusterConfig(address=resolved, token=token, token_source=source,
                              backoff=jobs.Backoff(wait_s=wait_s))


def _connect(address: str | None, wait_s: float = jobs.DEFAULT_WAIT_S) -> Any:
    """The Jobs API client, with Ray's INFO chatter ("Uploading package ...") silenced."""
    client = jobs.connect(cluster_config(address, wait_s))
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk",
                 "ray._private.runtime_env.packaging"):  # Ray sets these to INFO on import
        logging.getLogger(name).setLevel(logging.WARNING)
    return client


def _one_line_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """A Flatline error (a `JobsError` with its own exit code) ends the command with its one
    line (`render.fail`)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except FlatlineError as exc:
            raise fail(exc) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


@_one_line_errors
def submit(
    manifest: Annotated[Path, typer.Argument(help="The manifest (YAML) to run on the cluster.")],
    address: AddressOption = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Name of the run (default: <name>-<manifest digest>)."),
    ] = None,
    num_cpus: Annotated[
        float | None, typer.Option("--num-cpus", help="CPUs reserved for the driver itself.")
    ] = None,
    num_gpus: Annotated[
        float | None, typer.Option("--num-gpus", help="GPUs reserved for the driver itself.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Stream the run's log until it ends.")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to keep retrying while the cluster cannot "
                            "take the job yet (a head that is starting, HTTP 5xx).", min=0)
    ] = jobs.DEFAULT_SUBMIT_WAIT_S,
) -> None:
    """Submit a manifest as a Ray Job (`audit-<run>`); submitting the same run again is safe."""
    info = jobs.describe_manifest(manifest)
    options = jobs.SubmitOptions(
        run_id=jobs.check_run_id(run_id or jobs.derive_run_id(info)),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    client = _connect(address, wait)
    result = jobs.submit(client, info, options)
    if result.created:
        typer.echo(f"submitted run {result.run_id} as job {result.submission_id}")
    else:
        typer.echo(
            f"run {result.run_id} was already submitted as job {result.submission_id} "
            f"({result.state}); nothing new was started"
        )
    typer.echo(f"  audit status {result.run_id} | audit logs {result.run_id} --follow"
               f" | audit stop {result.run_id}")
    if follow:
        _follow(client, result.run_id)


@_one_line_errors
def status(
    run: Annotated[
        str | None, typer.Argument(help="A run id; all recent runs when absent.")
    ] = None,
    address: AddressOption = None,
    limit: Annotated[int, typer.Option("--limit", help="How many recent runs to list.")] = 20,
) -> None:
    """Show one run (state, duration, cases), or a table of recent runs."""
    client = _connect(address)
    if run is not None:
        info = jobs.get_run(client, run)
        _show_run(info, jobs.entrypoint_error(client, info))
        return
    runs = jobs.list_runs(client, limit=limit)
    if not runs:
        typer.echo("no audit runs on this cluster")
        return
    rows = [("RUN", "STATE", "STARTED", "DURATION", "CASES")]
    rows += [(r.run_id, r.state, _when(r.start_time), duration(r.duration_s), _cases(r))
             for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@_one_line_errors
def logs(
    run: Annotated[str, typer.Argument(help="The run id.")],
    address: AddressOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the run ends.")
    ] = False,
) -> None:
    """Print a run's log; with --follow, stream it (reconnecting) until the run ends."""
    client = _connect(address)
    if follow:
        _follow(client, run)
        return
    typer.echo(jobs.get_logs(client, run), nl=False)
    info = jobs.get_run(client, run)
    why = jobs.entrypoint_error(client, info)
    if why:
        typer.echo(_not_started(info, why), err=True)


@_one_line_errors
def stop(
    run: Annotated[str, typer.Argument(help="The run id.")],
    address: AddressOption = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the run to stop.")
    ] = 60.0,
) -> None:
    """Stop a run: its driver records the finished cases and marks the run stopped.

    Exit code 0 when the run has ended, 1 when it is still pending or running.
    """
    client = _connect(address)
    info = jobs.stop_run(client, run, wait_s=wait)
    if info.state in jobs.TERMINAL_STATES:
        typer.echo(f"run {info.run_id} is {info.state} ({_cases(info)} cases)")
        return
    if info.state == "PENDING":
        typer.echo(f"run {info.run_id} is still PENDING: Ray has not placed its driver (does the "
                   "cluster have the --num-cpus/--num-gpus it asked for?) and fails it at its "
                   "start timeout (RAY_JOB_START_TIMEOUT_SECONDS, 15 min by default)")
    else:
        typer.echo(f"run {info.run_id} is still {info.state} after {wait:.0f}s; Ray kills its "
                   "driver once the stop grace period ends")
    raise typer.Exit(1)


def _follow(client: Any, run: str) -> None:
    """Stream the log; exit 0 when the run succeeded, 1 when it ended any other way."""
    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    info = jobs.follow_logs(client, run, write)
    why = jobs.entrypoint_error(client, info)
    typer.echo(_not_started(info, why) if why else f"run {info.run_id} {info.state}", err=True)
    if info.state != "SUCCEEDED":
        raise typer.Exit(1)


def _not_started(run: jobs.RunInfo, why: str) -> str:
    return (f"run {run.run_id} {run.state} before its driver wrote anything: {why}"
            + ("; is `audit` on the PATH of the cluster's nodes? see cluster/README.md"
               if "not found" in why else ""))


def _show_run(run: jobs.RunInfo, why: str | None = None) -> None:
    fields = [
        ("run", run.run_id),
        ("job", run.submission_id),
        ("state", run.state),
        ("started", _when(run.start_time)),
        ("duration", duration(run.duration_s)),
        ("cases", _cases(run)),
        ("output", run.output or "-"),
        ("message", one_line(run.message or "-", 200)),
    ]
    if why:
        fields.append(("failed", f"the driver never started: {why}"))
    for key, value in fields:
        typer.echo(f"{key:<9} {value}")


def _cases(run: jobs.RunInfo) -> str:
    counts = jobs.case_counts(run.output, run.run_id, run.total_cases) if run.output else None
    if counts is None:
        return "?" if run.total_cases is None else f"? of {run.total_cases}"
    text = f"{counts.done} done, {counts.failed} failed"
    text += f" of {counts.total}" if counts.total is not None else ""
    return text + (f" (report: {counts.report})" if counts.report else "")


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC"
