"""A submitted run as the cluster and its report see it: status, the list, stop, what a
failed driver printed, and its log, followed across dropped connections.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit import reports
from audit.jobs.connection import JobsError, call, find_job
from audit.jobs.submission import (
    META_CASES,
    META_OUTPUT,
    META_RUN_ID,
    SUBMISSION_PREFIX,
    submission_id,
)
from audit.util.text import one_line

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


@dataclass(frozen=True)
class CaseCounts:
    """How many of a run's cases have a report, and how many of those did not end `ok`."""

    done: int
    failed: int
    total: int | None = None
    report: str | None = None  # the run row's status: finished | stopped; None while running


@dataclass(frozen=True)
class RunInfo:
    """One submitted run as the cluster sees it."""

    run_id: str
    submission_id: str
    state: str
    start_time: float | None = None  # seconds since the epoch
    end_time: float | None = None
    message: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.start_time is None:
            return None
        return (self.end_time or time.time()) - self.start_time

    @property
    def output(self) -> str | None:
        return self.metadata.get(META_OUTPUT)

    @property
    def total_cases(self) -> int | None:
        value = self.metadata.get(META_CASES, "")
        return int(value) if value.isdigit() else None


def _run_info(job: Any) -> RunInfo:
    meta = dict(job.metadata or {})
    sid = job.submission_id or ""
    run_id = meta.get(META_RUN_ID) or sid.removeprefix(SUBMISSION_PREFIX)
    return RunInfo(
        run_id=run_id,
        submission_id=sid,
        state=str(job.status.value),
        start_time=job.start_time / 1000 if job.start_time else None,
        end_time=job.end_time / 1000 if job.end_time else None,
        message=job.message,
        metadata=meta,
    )


def get_run(client: JobSubmissionClient, run_id: str) -> RunInfo:
    """The job of one run; `JobsError` (exit 2) when the cluster has none."""
    sid = submission_id(run_id)
    job = find_job(client, sid)
    if job is None:
        raise JobsError(f"no run {sid.removeprefix(SUBMISSION_PREFIX)!r} on this cluster; "
                        "`audit status` lists the runs it has")
    return _run_info(job)


def list_runs(client: JobSubmissionClient, limit: int = 20) -> list[RunInfo]:
    """The cluster's audit runs, newest first (other Ray jobs are left out)."""
    jobs = call("list jobs", client.list_jobs)
    runs = [
        _run_info(job) for job in jobs
        if (job.submission_id or "").startswith(SUBMISSION_PREFIX)
        or META_RUN_ID in (job.metadata or {})
    ]
    runs.sort(key=lambda r: r.start_time or 0.0, reverse=True)
    return runs[:limit]


def stop_run(
    client: JobSubmissionClient,
    run_id: str,
    wait_s: float = 60.0,
    pending_wait_s: float = 5.0,
    poll_s: float = 0.5,
) -> RunInfo:
    """Ask the run's driver to stop (SIGTERM: it records what finished) and wait for it.

    A PENDING job whose driver Ray cannot place (e.g. more --num-gpus than the cluster has)
    does not react to a stop: Ray fails it only at its start timeout. We wait `pending_wait_s`
    for it, not `wait_s`, and return it still PENDING.
    """
    run = get_run(client, run_id)
    if run.state in TERMINAL_STATES:
        return run
    call(f"stop {run.submission_id}", client.stop_job, run.submission_id)
    start = time.monotonic()
    while True:
        run = get_run(client, run_id)
        waited = time.monotonic() - start
        if run.state in TERMINAL_STATES or waited > wait_s or (
                run.state == "PENDING" and waited > pending_wait_s):
            return run
        time.sleep(poll_s)


def case_counts(output: str, run_id: str, total: int | None = None) -> CaseCounts | None:
    """What the run's report says so far, or None when it can't be read from here.

    Counts `cases/run_id=<RUN>/` rows by status and reads the run row's status (`finished` or
    `stopped`; absent while the run goes on) through `audit.reports`, so shared paths and
    object stores work alike.
    """

    try:
        store = reports.Store(output)
        statuses = store.case_statuses(run_id)
        ended = _run_status(store, run_id)
    except Exception:  # unreachable storage, no credentials here: counts are a nicety
        return None
    done = sum(statuses.values())
    return CaseCounts(done, done - statuses.get("ok", 0), total, ended)


def _run_status(store: Any, run_id: str) -> str | None:
    """The run row's status through the Store's own query view; None while the run goes on."""

    if run_id not in store.run_ids():
        return None
    (summary,) = reports.summarize(store.output, run_id, limit=0)
    return None if summary.status == "incomplete" else summary.status


def entrypoint_error(client: JobSubmissionClient, run: RunInfo) -> str | None:
    """Why a failed job's driver never ran, in one line (e.g. "/bin/sh: 1: audit: not found");
    None unless the job FAILED before the driver wrote any case or run row.

    The line is the last one of the job's log that reads as an error (what the shell or
    Python printed last), with the exit code Ray reports.
    """
    if run.state != "FAILED":
        return None
    counts = case_counts(run.output, run.run_id, run.total_cases) if run.output else None
    if counts is not None and (counts.done or counts.report):
        return None
    try:
        log = call(f"logs {run.submission_id}", client.get_job_logs, run.submission_id)
    except JobsError:
        log = ""
    lines = [" ".join(line.split()) for line in log.splitlines() if line.strip()]
    lines += [" ".join(line.split()) for line in (run.message or "").splitlines()[1:]
              if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    why = (errors or lines or ["no output"])[-1]
    code = _EXIT_CODE.search(run.message or "")
    return f"{why[:240]}" + (f" (exit code {code.group(1)})" if code else "")


_ERROR_LINE = re.compile(r"not found|No such file|[A-Za-z]*(Error|Exception)\b|error:|"
                         r"[Pp]ermission denied|cannot|[Kk]illed", re.IGNORECASE)
_EXIT_CODE = re.compile(r"exit code (-?\d+)")


# ---------------------------------------------------------------- logs


def follow_logs(
    client: JobSubmissionClient,
    run_id: str,
    write: Callable[[str], None],
    *,
    retry_s: float = 1.0,
    max_retries: int = 60,
) -> RunInfo:
    """Stream the run's log until the job ends, reconnecting when the stream drops.

    The server replays the log from its start on every connection, so what was already
    written is skipped: the output has every line once. Returns the finished run.
    """
    from ray.exceptions import AuthenticationError

    sid = get_run(client, run_id).submission_id
    progress = _Progress()
    failures = 0
    while True:
        try:
            asyncio.run(_tail(client, sid, write, progress))
            run = get_run(client, run_id)
        except AuthenticationError:
            raise JobsError(f"logs {sid}: the cluster refused the token") from None
        except (TimeoutError, RuntimeError, OSError, ConnectionError, JobsError) as exc:
            failures += 1
            if failures > max_retries:
                raise JobsError(
                    f"logs {sid}: lost the log stream {failures} times ({one_line(exc)})"
                ) from None
            time.sleep(retry_s)
            continue
        if run.state in TERMINAL_STATES:
            rest = call(f"logs {sid}", client.get_job_logs, sid)
            if len(rest) > progress.written:
                write(rest[progress.written:])
            return run
        time.sleep(retry_s)  # stream ended but the job runs on: reconnect


@dataclass
class _Progress:
    """Characters of the log already written; survives a dropped connection."""

    written: int = 0


async def _tail(client: JobSubmissionClient, sid: str, write: Callable[[str], None],
                progress: _Progress) -> None:
    """One connection's worth of log, skipping what an earlier connection already wrote."""
    seen = 0
    async for chunk in client.tail_job_logs(sid):
        new = chunk[max(0, progress.written - seen):]
        seen += len(chunk)
        if new:
            write(new)
            progress.written += len(new)


def get_logs(client: JobSubmissionClient, run_id: str) -> str:
    """The run's whole log so far."""
    sid = get_run(client, run_id).submission_id
    return call(f"logs {sid}", client.get_job_logs, sid)
