"""Running a manifest's cases on Ray: actors sized by `resources`, a bounded window of cases
in flight, retries on fresh actors, per-case time limits, resume, progress, clean stops.

The scheduler (`ActorPool`) only maps (actor, case) -> small status; it knows nothing about
probes. Each actor (`CaseWorker`) runs `audit.engine.audit_case` on the paths it is given,
writes the case's report files itself and returns a few fields, so the driver never holds the
fleet's results. The driver writes only the rows of cases whose worker died or timed out.

This module imports Ray but never TensorFlow; actors import TensorFlow when they start.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.reports import ReportError, RunRow, Store, check_run_id
from audit.results import CaseReport
from audit.spec import CaseSpec, Manifest, Resources, slug

__all__ = [
    "ActorPool",
    "FleetError",
    "FleetOptions",
    "Injection",
    "RunResult",
    "configure_tensorflow",
    "gpu_memory_limit_mb",
    "loopback_only",
    "new_run_id",
    "run_fleet",
    "run_manifest",
]

WARMUP_TIMEOUT_S = 600.0  # an actor that cannot start (import TF) within this is given up
MAX_START_FAILURES = 3  # consecutive actor start failures before the run is abandoned


class FleetError(RuntimeError):
    """The run could not start or go on (no cluster, auth refused, no resources); one line."""


class Injection(BaseModel):
    """TESTING ONLY: make the named case fail inside its worker, to test the scheduler.

    `exit` kills the worker process (`os._exit`), `raise` raises in the worker, `sleep` holds
    the worker for `seconds`. `attempts` = n fires on the first n attempts only (0: always).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["exit", "raise", "sleep"]
    attempts: int = Field(0, ge=0)
    seconds: float = Field(0.0, ge=0)


class FleetOptions(BaseModel):
    """How to run a manifest; what the CLI's flags become."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run_id: str | None = Field(None, description="default: <name>-<UTC time>-<random>")
    resume: bool = Field(False, description="the run must exist; its finished cases are skipped")
    retry_failed: bool = Field(False, description="with resume or run_id: re-run the cases "
                               "whose report ended other than ok (their rows are replaced)")
    address: str | None = Field(None, description="a Ray cluster; None: an embedded local Ray")
    max_concurrency: int | None = Field(None, ge=1, description="at most this many actors")
    trust_models: bool = False
    output: str | None = Field(None, description="overrides the manifest's output")
    progress: bool = True
    poll_s: float = Field(0.5, gt=0, description="ray.wait timeout of the driver's loop")
    worker_logs: bool = Field(False, description="forward the workers' stdout/stderr")
    handle_signals: bool = Field(True, description="SIGTERM/SIGINT stop the run cleanly")
    inject: dict[str, Injection] = Field(
        default_factory=dict, description="TESTING ONLY: case name -> injected failure"
    )


@dataclass
class RunResult:
    """What happened to a run; `exit_code` is the CLI's (0 all ok, 1 something failed)."""

    run_id: str
    output: str
    n_cases: int
    n_ok: int = 0
    n_error: int = 0
    n_timeout: int = 0
    n_resumed: int = 0  # cases already reported before this invocation
    stopped: bool = False
    concurrency: int = 0
    duration_s: float = 0.0

    @property
    def n_failed(self) -> int:
        return self.n_error + self.n_timeout

    @property
    def n_missing(self) -> int:
        return self.n_cases - self.n_ok - self.n_failed

    @property
    def exit_code(self) -> int:
        return 0 if self.n_failed == 0 and self.n_missing == 0 and not self.stopped else 1


def new_run_id(name: str) -> str:
    """`<name>-<YYYYmmdd-HHMMSS>-<4 hex>`: sortable, unique, a safe folder name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{slug(name, 40)}-{stamp}-{uuid.uuid4().hex[:4]}"


# ---------------------------------------------------------------- inside the actor


@dataclass(frozen=True)
class WorkerConfig:
    """What every actor of a run is told when it starts."""

    output: str
    run_id: str
    resources: Resources
    inject: dict[str, Injection] = field(default_factory=dict)


class CaseWorker:
    """A Ray actor: set up TensorFlow once, then audit cases and write their reports."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.store = Store(config.output)
        self.identity: dict[str, Any] = {}

    def setup(self) -> dict[str, Any]:
        """Import and configure TensorFlow before any op; return where this actor runs."""
        import ray

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        context = ray.get_runtime_context()
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        configure_tensorflow(self.config.resources, gpu_ids)
        self.identity = {"node": ray.util.get_node_ip_address(), "gpu_ids": gpu_ids,
                         "worker": context.get_actor_id(), "pid": os.getpid()}
        return self.identity

    def run(self, spec: CaseSpec, attempt: int) -> dict[str, Any]:
        """Audit one case, write its report, return a small status."""
        from audit.engine import audit_case

        _maybe_inject(self.config.inject.get(spec.name), attempt)
        report = audit_case(spec)
        report.attempts = attempt
        report.node = self.identity.get("node")
        report.gpu_ids = list(self.identity.get("gpu_ids", []))
        report.worker = self.identity.get("worker")
        self.store.write_case(self.config.run_id, report)
        return {"case_id": report.case_id, "status": report.status, "verdict": report.verdict}


def _maybe_inject(injection: Injection | None, attempt: int) -> None:
    if injection is None or (injection.attempts and attempt > injection.attempts):
        return
    if injection.kind == "exit":
        os._exit(17)
    if injection.kind == "raise":
        raise RuntimeError("injected failure")
    time.sleep(injection.seconds)


def configure_tensorflow(resources: Resources, gpu_ids: list[str]) -> None:
    """Threads to the CPU share; GPU memory capped to the GPU share (only if a GPU is seen)."""
    import tensorflow as tf

    threads = max(1, math.floor(resources.num_cpus))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus or resources.num_gpus <= 0:
        return
    total = resources.gpu_memory_mb or _gpu_memory_mb(gpu_ids[0] if gpu_ids else "0")
    limit = gpu_memory_limit_mb(resources.num_gpus, total)
    for gpu in gpus:
        if limit is None:
            tf.config.experimental.set_memory_growth(gpu, True)
        else:
            tf.config.set_logical_device_configuration(
                gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])


def gpu_memory_limit_mb(share: float, total_mb: int | None) -> int | None:
    """This actor's slice of one GPU's memory: the fractional share of it, less 5% headroom
    for the CUDA context; None (grow as needed) when the total is unknown or the share whole."""
    if not total_mb or share >= 1:
        return None
    return max(64, int(total_mb * share * 0.95))


def _gpu_memory_mb(gpu_id: str) -> int | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits",
             "-i", gpu_id], capture_output=True, text=True, timeout=10, check=True)
        return int(out.stdout.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- the scheduler


@dataclass
class _Slot:
    """One actor seat: the actor, whether it has started, and how many cases it ran."""

    actor: Any = None
    warm_ref: Any = None
    info: Any = None  # what the actor's warm-up returned (where it runs)
    ready: bool = False
    uses: int = 0
    failures: int = 0
    warm_started: float = 0.0


@dataclass
class _Flight:
    slot: _Slot
    item: Any
    attempt: int
    started: float
    deadline: float
    where: Any = None  # the slot's actor info, for rows the driver writes


@dataclass
class Outcome:
    """What became of one item: `ok` (the actor's status), `error` or `timeout`."""

    item: Any
    kind: Literal["ok", "error", "timeout"]
    attempt: int
    started: float
    status: dict[str, Any] | None = None
    reason: str | None = None
    where: Any = None


class ActorPool:
    """Schedules items on a fixed number of actor seats: one item per actor at a time, a
    bounded window in flight, retries on fresh actors, time limits, actor recycling.

    `make_actor()` returns a started actor handle, `warm(actor)` a ref that resolves when it is
    ready, `submit(actor, item, attempt)` a ref of the item's status, `time_limit(item)` its
    limit in seconds. The pool never looks inside an item or a status.
    """

    def __init__(self, size: int, make_actor: Callable[[], Any], warm: Callable[[Any], Any],
                 submit: Callable[[Any, Any, int], Any], time_limit: Callable[[Any], float],
                 max_attempts: int, max_uses: int, poll_s: float = 0.5) -> None:
        self.slots = [_Slot() for _ in range(size)]
        self.make_actor, self.warm, self.submit = make_actor, warm, submit
        self.time_limit, self.max_attempts, self.max_uses = time_limit, max_attempts, max_uses
        self.poll_s = poll_s
        self.pending: deque[tuple[Any, int]] = deque()
        self.flights: dict[Any, _Flight] = {}
        self.warming: dict[Any, _Slot] = {}
        self.stop_requested = threading.Event()

    def run(self, items: Iterator[Any]) -> Iterator[Outcome]:
        """Yield each item's final outcome as it happens (retries are internal)."""
        self.pending.extend((item, 1) for item in items)
        try:
            while (self.pending or self.flights) and not self.stop_requested.is_set():
                self._fill()
                yield from self._step()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Kill every actor of the pool (their resources go back to the cluster)."""
        for slot in self.slots:
            self._kill(slot)
        self.flights.clear()
        self.warming.clear()

    def _fill(self) -> None:
        """Start actors for empty seats (while work remains); give ready seats an item."""
        busy = {id(f.slot) for f in self.flights.values()}
        for slot in self.slots:
            if not self.pending:
                break
            if slot.actor is None:
                slot.actor = self.make_actor()
                slot.warm_ref = self.warm(slot.actor)
                slot.ready, slot.warm_started = False, time.monotonic()
                self.warming[slot.warm_ref] = slot
            elif slot.ready and id(slot) not in busy:
                item, attempt = self.pending.popleft()
                now = time.monotonic()
                ref = self.submit(slot.actor, item, attempt)
                self.flights[ref] = _Flight(slot, item, attempt, time.time(),
                                            now + self.time_limit(item), slot.info)
                busy.add(id(slot))

    def _step(self) -> Iterator[Outcome]:
        import ray

        refs = [*self.flights, *self.warming]
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=self.poll_s, fetch_local=True)
        for ref in ready:
            if ref in self.warming:
                self._warmed(ref)
            else:
                yield from self._finished(ref)
        yield from self._expire()

    def _warmed(self, ref: Any) -> None:
        import ray

        slot = self.warming.pop(ref)
        try:
            slot.info = ray.get(ref)
        except ray.exceptions.RayError as exc:
            slot.failures += 1
            self._kill(slot)
            if slot.failures >= MAX_START_FAILURES:
                raise FleetError(f"workers cannot start: {_reason(exc)}") from None
            return
        slot.ready, slot.failures = True, 0

    def _finished(self, ref: Any) -> Iterator[Outcome]:
        import ray

        flight = self.flights.pop(ref)
        slot = flight.slot
        try:
            status = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the actor died, or the case raised in it
            self._kill(slot)
            reason = _reason(exc)
            if flight.attempt < self.max_attempts:
                self.pending.appendleft((flight.item, flight.attempt + 1))
                return
            yield Outcome(flight.item, "error", flight.attempt, flight.started, reason=(
                f"worker failed on all {flight.attempt} attempts; last: {reason}"),
                where=flight.where)
            return
        slot.uses += 1
        if slot.uses >= self.max_uses:
            self._kill(slot)  # TF never returns memory to the OS: recycle
        yield Outcome(flight.item, "ok", flight.attempt, flight.started, status=status)

    def _expire(self) -> Iterator[Outcome]:
        import ray

        now = time.monotonic()
        for ref, flight in list(self.flights.items()):
            if now > flight.deadline:
                del self.flights[ref]
                self._kill(flight.slot)
                ray.wait([ref], timeout=10)  # the actor is gone: it can no longer write the case
                limit = self.time_limit(flight.item)
                yield Outcome(flight.item, "timeout", flight.attempt, flight.started,
                              reason=f"ran longer than its time limit of {limit:g}s; stopped",
                              where=flight.where)
        for ref, slot in list(self.warming.items()):
            if now - slot.warm_started > WARMUP_TIMEOUT_S:
                del self.warming[ref]
                self._kill(slot)
                raise FleetError(f"an actor did not start within {WARMUP_TIMEOUT_S:g}s; "
                                 "does the cluster have the resources a case asks for?")

    def _kill(self, slot: _Slot) -> None:
        import ray

        if slot.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
        if slot.warm_ref is not None:
            self.warming.pop(slot.warm_ref, None)
        slot.actor, slot.warm_ref, slot.ready, slot.uses, slot.info = None, None, False, 0, None


def _reason(exc: BaseException) -> str:
    """One line for a Ray error: the actor's death, or the exception the case raised."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        text = f"{type(cause).__name__}: {cause}"
    elif isinstance(exc, ray.exceptions.RayActorError):
        text = "worker process died"
        detail = " ".join(str(exc).split())
        for marker in ("exit code", "exit_code", "Exit code"):
            pos = detail.find(marker)
            if pos >= 0:
                text += f" ({detail[pos:pos + 40].split('.')[0]})"
                break
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text[:300]


# ---------------------------------------------------------------- the run


def run_fleet(manifest: Manifest, options: FleetOptions | None = None,
              cases: list[CaseSpec] | None = None,
              on_case: Callable[[RunResult], None] | None = None) -> RunResult:
    """Run every case of `manifest` on Ray and write the report; return the counts.

    Connects to `options.address` or starts an embedded local Ray (unless Ray is already
    initialized in this process, which is then used as is). Raises `FleetError` (or
    `ReportError`) when the run cannot start. SIGTERM/SIGINT stop it cleanly: finished cases
    stay written and the run row says `stopped`. `on_case(result)` is called after each case
    ends, with the counts so far (for progress displays and measurements).
    """
    options = options or FleetOptions()
    cases = cases if cases is not None else manifest.cases(trust_models=options.trust_models)
    output = options.output or manifest.output_uri
    store = Store(output)
    run_id, done = _plan(store, manifest, options)
    todo = [c for c in cases if c.case_id not in done]
    result = RunResult(run_id=run_id, output=output, n_cases=len(cases))
    _count_previous(store, run_id, [c.case_id for c in cases if c.case_id in done], result)
    started = time.time()
    with _ray(options) as address:
        size = _pool_size(manifest.resources, options, len(todo), manifest)
        result.concurrency = size
        with _stop_on_signals(options.handle_signals) as stop:
            _execute(manifest, store, run_id, todo, size, options, result, stop, on_case)
        result.stopped = stop.is_set()
        result.duration_s = time.time() - started
        store.write_run(run_id, _run_row(manifest, options, result, started, address))
    return result


def run_manifest(path: str | os.PathLike[str], options: FleetOptions | None = None) -> RunResult:
    """Load the manifest at `path` and run it (what `audit run` does)."""
    from audit.spec import load_manifest

    return run_fleet(load_manifest(path), options)


def _plan(store: Store, manifest: Manifest, options: FleetOptions) -> tuple[str, set[str]]:
    """The run id and the cases it already has (resume, or a re-used --run-id)."""
    if options.resume and not options.run_id:
        raise FleetError("--resume needs the id of the run to resume")
    if options.retry_failed and not options.run_id:
        raise FleetError("--retry-failed needs the run to retry (--resume RUN)")
    run_id = check_run_id(options.run_id) if options.run_id else new_run_id(manifest.name)
    try:
        if options.retry_failed:
            done = {case_id for case_id, status in store.case_status_by_id(run_id).items()
                    if status == "ok"}
        else:
            done = store.case_ids(run_id)
    except OSError as exc:
        raise ReportError(f"output {store.output}: cannot list reports ({exc})") from None
    if options.resume and not done and run_id not in store.run_ids():
        raise FleetError(f"--resume {run_id}: no such run under {store.output}")
    return run_id, done


def _count_previous(store: Store, run_id: str, ids: list[str], result: RunResult) -> None:
    if not ids:
        return
    counts = store.case_statuses(run_id, set(ids))
    result.n_resumed = len(ids)
    result.n_ok += counts.get("ok", 0)
    result.n_error += counts.get("error", 0) + counts.get("skipped", 0)
    result.n_timeout += counts.get("timeout", 0)


def _execute(manifest: Manifest, store: Store, run_id: str, todo: list[CaseSpec], size: int,
             options: FleetOptions, result: RunResult, stop: threading.Event,
             on_case: Callable[[RunResult], None] | None) -> None:
    """Stream the cases through the pool; record each failure at once; show progress."""
    import ray

    config = WorkerConfig(output=store.output, run_id=run_id, resources=manifest.resources,
                          inject=dict(options.inject))
    actor_class = ray.remote(CaseWorker).options(
        num_cpus=manifest.resources.num_cpus, num_gpus=manifest.resources.num_gpus,
        max_restarts=0, max_task_retries=0)
    execution = manifest.execution
    pool = ActorPool(
        size=size,
        make_actor=lambda: actor_class.remote(config),
        warm=lambda actor: actor.setup.remote(),
        submit=lambda actor, spec, attempt: actor.run.remote(spec, attempt),
        time_limit=lambda spec: spec.time_limit_s or execution.time_limit_s,
        max_attempts=execution.max_attempts,
        max_uses=execution.cases_per_actor,
        poll_s=options.poll_s,
    )
    pool.stop_requested = stop
    with _progress(options.progress, manifest.name, result) as advance:
        for outcome in pool.run(iter(todo)):
            _record(store, run_id, outcome, result)
            advance()
            if on_case is not None:
                on_case(result)


def _record(store: Store, run_id: str, outcome: Outcome, result: RunResult) -> None:
    """Count an outcome; write the case row when no worker could (died or timed out)."""
    if outcome.kind == "ok":
        status = (outcome.status or {}).get("status", "error")
        if status == "ok":
            result.n_ok += 1
        elif status == "timeout":
            result.n_timeout += 1
        else:
            result.n_error += 1
        return
    spec: CaseSpec = outcome.item
    where = outcome.where or {}
    now = time.time()
    store.write_case(run_id, CaseReport(
        case_id=spec.case_id, name=spec.name, model=spec.model, data=spec.data, task=spec.task,
        status=outcome.kind, verdict="error", error=outcome.reason, started_at=outcome.started,
        finished_at=now, duration_s=now - outcome.started, attempts=outcome.attempt,
        node=where.get("node"), gpu_ids=list(where.get("gpu_ids", [])),
        worker=where.get("worker")))
    if outcome.kind == "timeout":
        result.n_timeout += 1
    else:
        result.n_error += 1


def _pool_size(resources: Resources, options: FleetOptions, n_todo: int,
               manifest: Manifest) -> int:
    """As many actors as the cluster's resources hold, capped by --max-concurrency."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0)), float(total.get("GPU", 0))
    if resources.num_gpus > 0 and gpus < resources.num_gpus:
        raise FleetError(f"resources.num_gpus={resources.num_gpus:g} per case but the cluster "
                         f"has {gpus:g} GPUs")
    if cpus < resources.num_cpus:
        raise FleetError(f"resources.num_cpus={resources.num_cpus:g} per case but the cluster "
                         f"has {cpus:g} CPUs")
    size = math.floor(cpus / resources.num_cpus + 1e-9)
    if resources.num_gpus > 0:
        size = min(size, math.floor(gpus / resources.num_gpus + 1e-9))
    for cap in (options.max_concurrency, manifest.execution.max_concurrency):
        if cap:
            size = min(size, cap)
    return max(1, min(size, n_todo or 1))


@contextlib.contextmanager
def _ray(options: FleetOptions) -> Iterator[str | None]:
    """Use an initialized Ray as is; else connect to `address` or start an embedded one."""
    if not options.address or _is_loopback(options.address):
        loopback_only()  # before Ray looks up this machine's address
    import ray

    if ray.is_initialized():
        yield options.address
        return
    if options.address:
        _check_reachable(options.address)
    try:
        if options.address:
            ray.init(address=options.address, log_to_driver=options.worker_logs,
                     logging_level="ERROR")
        else:
            ray.init(address="local", include_dashboard=False, log_to_driver=options.worker_logs,
                     logging_level="ERROR")
    except ray.exceptions.AuthenticationError:
        raise FleetError(
            f"Ray at {options.address} requires a token and none was found; set RAY_AUTH_TOKEN "
            "(or RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) to the cluster's token") from None
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = options.address or "an embedded local Ray"
        hint = ("; the port answers but the cluster did not accept this client: is the token "
                "right (RAY_AUTH_TOKEN) and the address the head's GCS port (6379 by default)?"
                if options.address and "Failed to connect" in str(exc) else "")
        raise FleetError(f"cannot start on {where}: {' '.join(str(exc).split())[:200]}{hint}"
                         ) from None
    try:
        yield options.address
    finally:
        ray.shutdown()


def loopback_only() -> None:
    """Keep a local Ray on 127.0.0.1 (by default it binds, and rewrites 127.0.0.1 to, this
    machine's network address). Ray reads the variable when first imported, so when it already
    is, its constant is set too."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


def _check_reachable(address: str) -> None:
    """Fail fast when nothing listens at `address` (ray.init would wait for minutes)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise FleetError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); "
                         "check --address or RAY_ADDRESS") from None


@contextlib.contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[threading.Event]:
    """An event set by SIGTERM (what `ray job stop` sends) or SIGINT, while the run lasts."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _progress(enabled: bool, name: str, result: RunResult) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr: cases done/failed of the total, and an ETA."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:  # a log (e.g. a Ray Job's): a plain line now and then
        yield _progress_lines(console, name, result)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(), console=console, transient=False)
    done = result.n_ok + result.n_failed
    task = progress.add_task(f"audit {name}", total=result.n_cases, completed=done,
                             failed=result.n_failed)
    with progress:
        yield lambda: progress.update(task, completed=result.n_ok + result.n_failed,
                                      failed=result.n_failed)


def _progress_lines(console: Any, name: str, result: RunResult,
                    every_s: float = 30.0) -> Callable[[], None]:
    """A progress callback printing `done/total, failed, ETA` at most every `every_s`."""
    start, first = time.monotonic(), result.n_ok + result.n_failed
    last = [start]

    def tick() -> None:
        now, done = time.monotonic(), result.n_ok + result.n_failed
        if now - last[0] < every_s and done < result.n_cases:
            return
        last[0] = now
        rate = (done - first) / max(now - start, 1e-9)
        eta = f"{(result.n_cases - done) / rate:.0f}s" if rate > 0 else "?"
        console.print(f"audit {name}: {done}/{result.n_cases} cases, {result.n_failed} failed, "
                      f"ETA {eta}", highlight=False)

    return tick


def _run_row(manifest: Manifest, options: FleetOptions, result: RunResult, started: float,
             address: str | None) -> RunRow:
    settings = {
        "manifest": manifest.model_dump(mode="json", by_alias=True,
                                        exclude={"entries", "fleet", "base_dir"}),
        "options": options.model_dump(mode="json", exclude={"inject"}),
    }
    return RunRow(
        name=manifest.name, status="stopped" if result.stopped else "finished",
        manifest=manifest.source, output=result.output, started_at=started,
        finished_at=time.time(), n_cases=result.n_cases, n_ok=result.n_ok,
        n_error=result.n_error, n_timeout=result.n_timeout, n_skipped=result.n_resumed,
        n_missing=result.n_missing, concurrency=result.concurrency, ray_address=address,
        settings=json.loads(json.dumps(settings)), package_version=_package_version())


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flatline-audit")
    except PackageNotFoundError:
        return "unknown"
