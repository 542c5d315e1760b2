"""Ray Jobs: submit an audit run to a shared cluster, and follow, list and stop it.

A run travels as one Ray Job whose submission id is `audit-<run_id>`, so submitting the same
run twice is harmless: the second submit finds the first job and reports it. The job's
entrypoint is `audit run <manifest> --run-id <RUN>`, started in the manifest's folder (shipped
as a small `working_dir`). Models, data and reports stay in shared storage, named by URI.

The client authenticates with Ray's token (`Authorization: Bearer <token>`), found by
`find_token` the way Ray itself looks for it. Every failure to reach or use the cluster raises
`JobsError` with one line that says what happened and what to do; the CLI prints it.

No TensorFlow here, and Ray's job client is imported only when a command talks to a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit import locations
from audit.text import RUN_ID_RULE, is_run_id, one_line

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = [
    "Backoff",
    "CaseCounts",
    "ClusterConfig",
    "JobsError",
    "ManifestInfo",
    "RetriesExhausted",
    "RetryingClient",
    "RunInfo",
    "SubmitOptions",
    "SubmitResult",
    "case_counts",
    "connect",
    "derive_run_id",
    "describe_manifest",
    "entrypoint_error",
    "find_token",
    "follow_logs",
    "get_run",
    "is_transient",
    "list_runs",
    "retry",
    "stop_run",
    "submission_id",
    "submit",
]

SUBMISSION_PREFIX = "audit-"
DEFAULT_MAX_WORKING_DIR_BYTES = 8 * 1024 * 1024
DEFAULT_STOP_GRACE_S = 30
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
DEFAULT_SUBMIT_WAIT_S = 60.0  # how long `audit submit` retries a cluster that is starting
DEFAULT_WAIT_S = 10.0  # the same for status, logs and stop
# Folders never shipped with the manifest (and not counted against the size limit).
WORKING_DIR_EXCLUDES = (".git", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache")
META_RUN_ID = "flatline_run_id"
META_DIGEST = "flatline_manifest_digest"
META_MANIFEST = "flatline_manifest"
META_OUTPUT = "flatline_output"
META_CASES = "flatline_cases"


class JobsError(RuntimeError):
    """A cluster operation failed; the message is one line naming what and how to fix it.

    `exit_code` is what the CLI exits with: 2 when the command could not run at all
    (no cluster, token refused, bad manifest, unknown run).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Backoff:
    """How long to retry a transient Jobs API error (a head that is starting, HTTP 5xx, "try
    again later"): waits of `first_s`, doubling up to `max_s`, for at most `wait_s` in all."""

    wait_s: float = DEFAULT_WAIT_S
    first_s: float = 0.5
    max_s: float = 8.0


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster's dashboard (Jobs API) listens, the token to present there, and how
    long to retry while the cluster cannot answer yet."""

    address: str
    token: str | None = None
    token_source: str | None = None  # where the token came from, for error messages
    verify: bool | str = True
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True)
class ManifestInfo:
    """What a submission needs to know about a manifest, without loading any model."""

    path: Path  # the manifest file, absolute
    name: str
    digest: str  # sha256 of the manifest's bytes
    output: str  # as written in the manifest (relative, absolute or a URI)
    n_cases: int | None  # None when the fleet globs could not be expanded here

    @property
    def folder(self) -> Path:
        return self.path.parent


@dataclass(frozen=True)
class SubmitOptions:
    """How to submit: which run, the driver's own resources, and the shipping limits."""

    run_id: str
    num_cpus: float | None = None
    num_gpus: float | None = None
    max_working_dir_bytes: int = DEFAULT_MAX_WORKING_DIR_BYTES
    stop_grace_s: int = DEFAULT_STOP_GRACE_S
    extra_args: tuple[str, ...] = ()  # more `audit run` options, e.g. ("--trust-models",)


@dataclass(frozen=True)
class SubmitResult:
    """The job that runs the submission; `created` is False when it already existed."""

    run_id: str
    submission_id: str
    created: bool
    state: str


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


# ---------------------------------------------------------------- token and client


def find_token(env: Mapping[str, str] | None = None, home: Path | None = None) -> tuple[
    str | None, str | None
]:
    """Ray's token and where it came from, looked up in Ray's own order.

    `RAY_AUTH_TOKEN`, then the file named by `RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`.
    Ray sends it only when `RAY_AUTH_MODE=token` is set in the client too; we always send it
    when found, so a laptop needs the token and nothing else.
    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    token = env.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "RAY_AUTH_TOKEN"
    token_path = env.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if token_path:
        try:
            token = Path(token_path).expanduser().read_text().strip()
        except OSError as exc:
            raise JobsError(
                f"RAY_AUTH_TOKEN_PATH={token_path}: cannot read the token file ({exc.strerror})"
            ) from None
        if not token:
            raise JobsError(f"RAY_AUTH_TOKEN_PATH={token_path}: the token file is empty")
        return token, f"RAY_AUTH_TOKEN_PATH={token_path}"
    default = home / ".ray" / "auth_token"
    if default.is_file():
        token = default.read_text().strip()
        if token:
            return token, str(default)
    return None, None


def connect(config: ClusterConfig,
            sleep: Callable[[float], None] = time.sleep) -> JobSubmissionClient:
    """A Jobs API client for the cluster, checked by one authenticated request.

    Transient errors (nothing listens yet, HTTP 5xx, "try again later") are retried with
    `config.backoff`, here and in every call of the returned client (`RetryingClient`).
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}

    def make() -> JobSubmissionClient:
        with _explicit_address():
            return JobSubmissionClient(config.address, headers=headers, verify=config.verify)

    waited = ""
    try:
        try:
            client = retry(make, config.backoff, sleep)
        except RetriesExhausted as gave_up:
            waited = f" after {gave_up.tries} tries in {gave_up.waited_s:.0f}s"
            raise gave_up.last from None
    except AuthenticationError as exc:
        raise _auth_error(config, exc) from None
    except (ConnectionError, OSError) as exc:
        raise JobsError(
            f"no Ray cluster answers at {config.address}{waited} ({one_line(exc)}); "
            "check --address (the head's dashboard, port 8265 by default)"
        ) from None
    except (RuntimeError, ValueError) as exc:
        raise JobsError(f"{config.address}{waited}: {one_line(exc)}") from None
    return RetryingClient(client, config.backoff, sleep)  # type: ignore[return-value]


# ---------------------------------------------------------------- transient errors


_STATUS = re.compile(r"(?:status code |^)(\d{3})\b")


def is_transient(exc: BaseException) -> bool:
    """Whether a Jobs API error may go away by itself: nothing listens yet (a head that is
    starting), an HTTP 5xx, or the server saying to try again later. A refused token, a
    missing job or a bad request never do."""
    from ray.exceptions import AuthenticationError

    if isinstance(exc, AuthenticationError):
        return False
    if isinstance(exc, ConnectionError) or type(exc).__name__ in ("ConnectionError",
                                                                    "ConnectTimeout"):
        return True  # builtin (Ray's "Failed to connect"), requests' and urllib3's
    text = " ".join(str(exc).split())
    if "try again later" in text.lower():
        return True
    match = _STATUS.search(text)
    return bool(match) and match.group(1).startswith("5")


class RetriesExhausted(Exception):
    """A transient error that did not go away within the backoff's wait."""

    def __init__(self, last: BaseException, tries: int, waited_s: float) -> None:
        super().__init__(str(last))
        self.last, self.tries, self.waited_s = last, tries, waited_s


def retry(fn: Callable[[], Any], backoff: Backoff,
          sleep: Callable[[float], None] = time.sleep) -> Any:
    """`fn()`, retried with exponential backoff while it raises a transient error; the first
    other error is raised at once, and `RetriesExhausted` once `backoff.wait_s` would pass."""
    start, delay, tries = time.monotonic(), backoff.first_s, 1
    while True:
        try:
            return fn()
        except Exception as exc:
            waited = time.monotonic() - start
            if not is_transient(exc):
                raise
            if waited + delay > backoff.wait_s:
                if tries == 1:
                    raise
                raise RetriesExhausted(exc, tries, waited) from None
            sleep(delay)
            tries += 1
            delay = min(delay * 2, backoff.max_s)


class RetryingClient:
    """A `JobSubmissionClient` whose request methods retry transient errors (`retry`).

    A submit retried after a 5xx that the server had in fact accepted finds its job "already
    exists", which `submit` reports as the job it is. The log stream is not wrapped:
    `follow_logs` reconnects by itself.
    """

    RETRIED = frozenset({"submit_job", "get_job_info", "list_jobs", "stop_job",
                         "get_job_logs", "get_job_status", "delete_job"})

    def __init__(self, client: Any, backoff: Backoff,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.backoff, self.sleep = client, backoff, sleep

    def __getattr__(self, name: str) -> Any:
        if name in ("client", "backoff", "sleep"):  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        attr = getattr(self.client, name)
        if name not in self.RETRIED:
            return attr

        def retried(*args: Any, **kwargs: Any) -> Any:
            return retry(lambda: attr(*args, **kwargs), self.backoff, self.sleep)

        return retried


@contextlib.contextmanager
def _explicit_address() -> Iterator[None]:
    """Ray lets RAY_ADDRESS override an explicit address; here the caller's choice wins."""
    saved = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
             if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _auth_error(config: ClusterConfig, exc: Exception) -> JobsError:
    refused = "403" in str(exc) or "Forbidden" in str(exc) or "invalid" in str(exc).lower()
    if config.token and refused:
        return JobsError(
            f"{config.address} refused the token from {config.token_source}; set RAY_AUTH_TOKEN "
            "(or RAY_AUTH_TOKEN_PATH) to the cluster's token, e.g. `ray get-auth-token` on the head"
        )
    return JobsError(
        f"{config.address} requires a token and none was found; set RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token to the cluster's token "
        "(`ray get-auth-token` on the head)"
    )


def _call(action: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one Jobs API call, turning Ray's exceptions into one-line `JobsError`s."""
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args)
    except RetriesExhausted as gave_up:
        raise JobsError(f"{action}: the cluster still failed after {gave_up.tries} tries in "
                        f"{gave_up.waited_s:.0f}s ({one_line(gave_up.last)}); is the head up? "
                        "--wait sets how long to retry") from None
    except AuthenticationError:
        raise JobsError(
            f"{action}: the cluster refused the token; set RAY_AUTH_TOKEN to the cluster's token"
        ) from None
    except (ConnectionError, OSError) as exc:
        raise JobsError(f"{action}: the cluster did not answer ({one_line(exc)})") from None
    except RuntimeError as exc:
        if "does not exist" in str(exc) or "404" in str(exc):
            raise JobsError(f"{action}: no such job on this cluster") from None
        raise JobsError(f"{action}: {one_line(exc)}") from None


# ---------------------------------------------------------------- manifests and run ids


def describe_manifest(path: Path) -> ManifestInfo:
    """Name, digest, output and case count of a manifest, validated by `audit.spec`.

    Counting reads no model or data: it expands fleet globs only (None if that fails here).
    """
    from audit import spec

    path = path.resolve()
    try:
        manifest = spec.load_manifest(path)
        raw = path.read_bytes()
    except spec.ManifestError as exc:
        raise JobsError(str(exc)) from None
    except OSError as exc:
        raise JobsError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    return ManifestInfo(
        path=path,
        name=manifest.name,
        digest=hashlib.sha256(raw).hexdigest(),
        output=manifest.output,
        n_cases=_count_cases(manifest),
    )


def _count_cases(manifest: Any) -> int | None:

    count = len(manifest.entries)
    for entry in manifest.fleet:
        try:
            count += len(locations.expand_glob(
                locations.resolve_location(entry.models, manifest.base_dir)))
        except (OSError, ValueError):  # e.g. no credentials for the bucket on this machine
            return None
    return count


def derive_run_id(info: ManifestInfo) -> str:
    """`<name>-<digest[:10]>`: the same manifest always names the same run."""
    slug = re.sub(r"[^a-z0-9]+", "-", info.name.lower()).strip("-")[:60] or "run"
    return f"{slug}-{info.digest[:10]}"


def check_run_id(run_id: str) -> str:
    """A run id is a safe slug: it becomes a Hive folder and a Ray submission id."""
    if not is_run_id(run_id):
        raise JobsError(f"run id {run_id!r} is not a safe slug; {RUN_ID_RULE}")
    return run_id


def submission_id(run_id: str) -> str:
    """The Ray submission id of a run; accepts either form."""
    run_id = run_id.removeprefix(SUBMISSION_PREFIX)
    return f"{SUBMISSION_PREFIX}{check_run_id(run_id)}"


# ---------------------------------------------------------------- submit


def check_submittable(info: ManifestInfo, max_bytes: int) -> int:
    """Refuse what cannot work on a cluster; returns the working_dir's size in bytes.

    A relative `output` would land in the job's temporary copy of the folder and be lost; a
    large folder means models or data travel with the job instead of living in shared storage.
    """
    if not locations.is_uri(info.output) and not Path(info.output).is_absolute():
        raise JobsError(
            f"{info.path.name}: output {info.output!r} is relative, so on the cluster the "
            "reports would land in the job's temporary working_dir; set output to a bucket "
            "URI (s3://bucket/flatline) or an absolute path on a shared mount"
        )
    size = working_dir_bytes(info.folder)
    if size > max_bytes:
        raise JobsError(
            f"{info.folder}: {size / 2**20:.1f} MiB is too large to ship as the job's "
            f"working_dir (limit {max_bytes / 2**20:.0f} MiB); keep only manifests there and "
            "put models and data in shared storage (s3://..., gs://... or a shared mount)"
        )
    return size


def working_dir_bytes(folder: Path) -> int:
    """Bytes Ray would upload for `folder`, skipping the excluded folders."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in WORKING_DIR_EXCLUDES]
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def entrypoint(info: ManifestInfo, options: SubmitOptions) -> str:
    """The job's shell command; it runs inside the shipped manifest folder."""
    args = ["audit", "run", info.path.name, "--run-id", options.run_id, *options.extra_args]
    return shlex.join(args)


def job_metadata(info: ManifestInfo, run_id: str) -> dict[str, str]:
    """What `audit status` needs later: the run, the manifest, where reports go."""
    meta = {
        META_RUN_ID: run_id,
        META_DIGEST: info.digest,
        META_MANIFEST: info.path.name,
        META_OUTPUT: info.output,
    }
    if info.n_cases is not None:
        meta[META_CASES] = str(info.n_cases)
    return meta


def submit(client: JobSubmissionClient, info: ManifestInfo, options: SubmitOptions) -> SubmitResult:
    """Submit the run as `audit-<run_id>`, or report the job that already runs it."""
    run_id = check_run_id(options.run_id)
    sid = submission_id(run_id)
    existing = _find_job(client, sid)
    if existing is not None:
        return SubmitResult(run_id, sid, created=False, state=str(existing.status.value))
    check_submittable(info, options.max_working_dir_bytes)
    runtime_env = {
        "working_dir": str(info.folder),
        "excludes": list(WORKING_DIR_EXCLUDES),
        # Ray waits this long after SIGTERM before SIGKILL: time to record finished cases.
        "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(options.stop_grace_s)},
    }
    try:
        _call(
            f"submit {sid}",
            lambda: client.submit_job(
                entrypoint=entrypoint(info, options),
                submission_id=sid,
                runtime_env=runtime_env,
                metadata=job_metadata(info, run_id),
                entrypoint_num_cpus=options.num_cpus,
                entrypoint_num_gpus=options.num_gpus,
            ),
        )
    except JobsError as exc:
        if "already exists" not in str(exc):
            raise
        state = _find_job(client, sid)  # submitted concurrently by someone else
        return SubmitResult(run_id, sid, False, str(state.status.value) if state else "UNKNOWN")
    return SubmitResult(run_id, sid, created=True, state="PENDING")


def _find_job(client: JobSubmissionClient, sid: str) -> Any | None:
    try:
        return _call(f"look up {sid}", client.get_job_info, sid)
    except JobsError as exc:
        if "no such job" in str(exc):
            return None
        raise


# ---------------------------------------------------------------- status, list, stop


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
    job = _find_job(client, sid)
    if job is None:
        raise JobsError(f"no run {sid.removeprefix(SUBMISSION_PREFIX)!r} on this cluster; "
                        "`audit status` lists the runs it has")
    return _run_info(job)


def list_runs(client: JobSubmissionClient, limit: int = 20) -> list[RunInfo]:
    """The cluster's audit runs, newest first (other Ray jobs are left out)."""
    jobs = _call("list jobs", client.list_jobs)
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
    _call(f"stop {run.submission_id}", client.stop_job, run.submission_id)
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
    from audit import reports

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
    from audit import reports

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
        log = _call(f"logs {run.submission_id}", client.get_job_logs, run.submission_id)
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
            rest = _call(f"logs {sid}", client.get_job_logs, sid)
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
    return _call(f"logs {sid}", client.get_job_logs, sid)
