"""What a run shows while it goes (a progress bar, or a line now and then in a log) and the
run row it writes when it ends."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from audit.fleet.types import FleetOptions, RunResult
from audit.manifest.schema import Manifest
from audit.reports import RunRow

__all__ = ["package_version", "progress", "progress_lines", "run_row"]


@contextlib.contextmanager
def progress(enabled: bool, name: str, result: RunResult) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr: cases done/failed of the total, and an ETA."""
    if not enabled:
        yield lambda: None
        return

    console = Console(stderr=True)
    if not console.is_terminal:  # a log (e.g. a Ray Job's): a plain line now and then
        yield progress_lines(console, name, result)
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=console, transient=False)
    done = _ended(result)
    task = bar.add_task(f"audit {name}", total=result.n_cases, completed=done,
                        failed=result.n_failed)
    with bar:
        yield lambda: bar.update(task, completed=_ended(result),
                                 failed=result.n_failed)


def progress_lines(console: Any, name: str, result: RunResult,
                   every_s: float = 30.0) -> Callable[[], None]:
    """A progress callback printing `done/total, failed, ETA` at most every `every_s`."""
    start, first = time.monotonic(), _ended(result)
    last = [start]

    def tick() -> None:
        now, done = time.monotonic(), _ended(result)
        if now - last[0] < every_s and done < result.n_cases:
            return
        last[0] = now
        rate = (done - first) / max(now - start, 1e-9)
        eta = f"{(result.n_cases - done) / rate:.0f}s" if rate > 0 else "?"
        console.print(f"audit {name}: {done}/{result.n_cases} cases, {result.n_failed} failed, "
                      f"ETA {eta}", highlight=False)

    return tick


def _ended(result: RunResult) -> int:
    """Cases that ended: audited, reused, or deferred by the deadline."""
    return result.n_ok + result.n_failed + result.n_deferred


def run_row(manifest: Manifest, options: FleetOptions, result: RunResult, started: float,
            address: str | None) -> RunRow:
    """The `runs` row: counts, status and the settings the run used."""
    settings = {
        "manifest": manifest.model_dump(mode="json", by_alias=True,
                                        exclude={"entries", "fleet", "base_dir"}),
        "options": options.model_dump(mode="json"),
    }
    return RunRow(
        name=manifest.name, status="stopped" if result.stopped else "finished",
        manifest=manifest.source, output=result.output, started_at=started,
        finished_at=time.time(), n_cases=result.n_cases, n_ok=result.n_ok,
        n_error=result.n_error, n_timeout=result.n_timeout, n_skipped=result.n_resumed,
        n_missing=result.n_missing, concurrency=result.concurrency, ray_address=address,
        settings=json.loads(json.dumps(settings)), package_version=package_version(),
        n_reused=result.n_reused, n_deferred=result.n_deferred, deadline=result.deadline)


def package_version() -> str:
    """The installed flatline-audit version: what the run row records and reuse compares."""

    try:
        return version("flatline-audit")
    except PackageNotFoundError:
        return "unknown"
