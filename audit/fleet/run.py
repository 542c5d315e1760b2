"""A run: plan it (new, resumed or retried), stream its cases through the pool, record each
outcome at once, and write the run row last.

The driver writes only the rows of cases whose worker could not (it died, timed out, or could
not write), of cases reused from an earlier run (copied first, `schedule.py` says which) and of
cases the deadline deferred; workers write the rest, so the driver never holds the fleet's
results. Cases start in the plan's order: last night's deferred ones, then longest first.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections.abc import Callable

from audit.evidence.results import CaseReport
from audit.fleet.pool import ActorPool, Outcome
from audit.fleet.progress import package_version, progress, run_row
from audit.fleet.schedule import Night, plan_night
from audit.fleet.session import ray_session, stop_on_signals
from audit.fleet.testing import Faults
from audit.fleet.types import FleetError, FleetOptions, RunResult, new_run_id
from audit.fleet.worker import CaseWorker, WorkerConfig, clear_run_folders, workers_parent
from audit.manifest.case import CaseSpec, Resources
from audit.manifest.schema import Manifest, load_manifest
from audit.manifest.sources import origin
from audit.mlflow.publish import publish_mlflow
from audit.reports import ReportError, Store
from audit.reports.history import case_rows, copy_case
from audit.util.deadline import resolve_deadline
from audit.util.text import RUN_ID_RULE, is_run_id

__all__ = ["pool_size", "run_fleet", "run_manifest"]


def run_fleet(manifest: Manifest, options: FleetOptions | None = None,
              cases: list[CaseSpec] | None = None,
              on_case: Callable[[RunResult], None] | None = None, *,
              faults: Faults | None = None) -> RunResult:
    """Run every case of `manifest` on Ray and write the report; return the counts.

    Connects to `options.address` or starts an embedded local Ray (unless Ray is already
    initialized in this process, which is then used as is). Raises `FleetError` (or
    `ReportError`) when the run cannot start. SIGTERM/SIGINT stop it cleanly: finished cases
    stay written and the run row says `stopped`. `on_case(result)` is called after each case
    ends, with the counts so far (for progress displays and measurements). `faults` is for
    tests only (`audit.fleet.testing`).
    """
    options = options or FleetOptions()
    output = options.output or manifest.output_uri
    store = Store(output)
    run_id = _run_id(manifest, options)
    started = time.time()
    deadline = _deadline(manifest, options, started)
    tag = uuid.uuid4().hex[:8]  # names this invocation's worker temp folders
    with ray_session(options) as address:
        # The actors start first and import TensorFlow while this process expands the
        # manifest, hashes the files and lists what the run already has.
        upper = None if cases is None and manifest.fleet else len(
            cases if cases is not None else manifest.entries)
        pool = _pool(manifest, store, run_id, options, faults or {}, tag,
                     pool_size(manifest.resources, options, upper, manifest))
        try:
            pool.start()
            if cases is None:
                cases = manifest.cases(trust_models=options.trust_models)
            done = _done(store, run_id, options)
            night = plan_night(store, [c for c in cases if c.case_id not in done],
                               run_id=run_id, version=package_version(),
                               reuse_days=manifest.execution.reuse_days, fresh=options.fresh,
                               longest_first=options.longest_first)
            result = RunResult(run_id=run_id, output=output, n_cases=len(cases),
                               deadline=deadline)
            if night.note:
                result.warnings.append(night.note)
            _count_previous(store, run_id, [c.case_id for c in cases if c.case_id in done],
                            result)
            todo = _reuse(store, run_id, night, result)
            pool.trim(len(todo))
            pool.deadline, pool.cost = deadline, night.expected
            result.concurrency = len(pool.slots)
            with stop_on_signals(options.handle_signals) as stop:
                pool.stop_requested = stop
                _execute(pool, manifest.name, store, run_id, todo, options, result, on_case)
        finally:  # workers killed mid-case (timeouts, a stop) leave their temp folders
            pool.shutdown()
            clear_run_folders(workers_parent(options.temp_root), tag)
        result.stopped = stop.is_set()
        result.duration_s = time.time() - started
        store.write_run(run_id, run_row(manifest, options, result, started, address))
    _publish(manifest, options, output, result)
    return result


def _publish(manifest: Manifest, options: FleetOptions, output: str,
             result: RunResult) -> None:
    """Publish the written report where the manifest or the options ask; never raises."""
    settings = manifest.publish.mlflow or options.publish_mlflow
    if settings is None:
        return

    published = publish_mlflow(output, result.run_id, settings)
    result.published.append(published.line())
    result.warnings.extend(published.warnings)


def run_manifest(path: str | os.PathLike[str], options: FleetOptions | None = None, *,
                 faults: Faults | None = None) -> RunResult:
    """Load the manifest at `path` and run it (what `audit run` does)."""

    return run_fleet(load_manifest(path), options, faults=faults)


def _run_id(manifest: Manifest, options: FleetOptions) -> str:
    """This run's id (new, or the one to resume), its options checked before Ray starts."""
    if options.resume and not options.run_id:
        raise FleetError("--resume needs the id of the run to resume")
    if options.retry_failed and not options.run_id:
        raise FleetError("--retry-failed needs the run to retry (--resume RUN)")
    if options.run_id and not is_run_id(options.run_id):
        raise FleetError(f"run id {options.run_id!r} is not a safe slug; {RUN_ID_RULE}")
    return options.run_id or new_run_id(manifest.name)


def _deadline(manifest: Manifest, options: FleetOptions, started: float) -> float | None:
    """The run's deadline (`--deadline` over `execution.deadline`) as epoch seconds; a
    deadline already past is refused before Ray starts."""
    text = options.deadline or manifest.execution.deadline
    if text is None:
        return None
    try:
        return resolve_deadline(text, started)
    except ValueError as exc:
        where = "--deadline" if options.deadline else "execution.deadline"
        raise FleetError(f"{where}: {exc}") from None


def _reuse(store: Store, run_id: str, night: Night, result: RunResult) -> list[CaseSpec]:
    """Copy the reused cases' rows into this run (first: they cost nothing); a case whose
    rows cannot be copied is audited instead. Returns the cases to audit, in order."""
    todo = list(night.todo)
    for spec_id, reuse in night.reused.items():
        try:
            copy_case(store, reuse.source_run, run_id, spec_id, reuse.audited_in)
        except ReportError as exc:
            result.warnings.append(f"{exc}; auditing it instead")
            todo.insert(0, night.specs[spec_id])
            continue
        result.n_ok += 1
        result.n_reused += 1
    return todo


def _done(store: Store, run_id: str, options: FleetOptions) -> set[str]:
    """The cases the run already has (resume, or a re-used --run-id); a case the deadline
    deferred is not done: a resumed run audits it."""
    try:
        if options.retry_failed:
            done = {case_id for case_id, status in store.case_status_by_id(run_id).items()
                    if status == "ok"}
        else:
            done = {case_id for case_id, status in store.case_status_by_id(run_id).items()
                    if status != "deferred"}
    except OSError as exc:
        raise ReportError(f"output {store.output}: cannot list reports ({exc})") from None
    if options.resume and not done and run_id not in store.run_ids():
        raise FleetError(f"--resume {run_id}: no such run under {store.output}")
    return done


def _count_previous(store: Store, run_id: str, ids: list[str], result: RunResult) -> None:
    if not ids:
        return
    wanted = set(ids)
    rows = case_rows(store, run_id, ("status", "reused_from"), wanted.__contains__)
    statuses = [r["status"] for r in rows]
    result.n_resumed = len(ids)
    result.n_ok += statuses.count("ok")
    result.n_reused += sum(1 for r in rows if r["status"] == "ok" and r["reused_from"])
    result.n_error += statuses.count("error") + statuses.count("skipped")
    result.n_timeout += statuses.count("timeout")


def _pool(manifest: Manifest, store: Store, run_id: str, options: FleetOptions,
          faults: Faults, tag: str, size: int) -> ActorPool:
    """The actor pool of this run: `size` seats of `CaseWorker`s, each recycled after
    `execution.cases_per_actor` cases."""
    import ray

    config = WorkerConfig(output=store.output, run_id=run_id, resources=manifest.resources,
                          temp_root=options.temp_root, run_tag=tag, faults=dict(faults))
    actor_class = ray.remote(CaseWorker).options(
        num_cpus=manifest.resources.num_cpus, num_gpus=manifest.resources.num_gpus,
        max_restarts=0, max_task_retries=0)
    execution = manifest.execution
    return ActorPool(
        size=size,
        make_actor=lambda: actor_class.remote(config),
        warm=lambda actor: actor.setup.remote(),
        submit=lambda actor, spec, attempt: actor.run.remote(spec, attempt),
        time_limit=lambda spec: spec.time_limit_s or execution.time_limit_s,
        max_attempts=execution.max_attempts,
        max_uses=execution.cases_per_actor,
        poll_s=options.poll_s,
        retire=lambda actor: actor.close.remote(),
    )


def _execute(pool: ActorPool, name: str, store: Store, run_id: str, todo: list[CaseSpec],
             options: FleetOptions, result: RunResult,
             on_case: Callable[[RunResult], None] | None) -> None:
    """Stream the cases through the pool; record each failure at once; show progress."""
    with progress(options.progress, name, result) as advance:
        for outcome in pool.run(iter(todo)):
            _record(store, run_id, outcome, result)
            advance()
            if on_case is not None:
                on_case(result)


def _record(store: Store, run_id: str, outcome: Outcome, result: RunResult) -> None:
    """Count an outcome; write the case row when no worker could (died, timed out, or its
    write failed, e.g. a full disk)."""
    status = outcome.status or {}
    if outcome.kind == "deferred":
        _write_deferred(store, run_id, outcome, result)
        return
    if outcome.kind == "ok" and status.get("written", True):
        state = status.get("status", "error")
        if state == "ok":
            result.n_ok += 1
        elif state == "timeout":
            result.n_timeout += 1
        else:
            result.n_error += 1
        return
    spec: CaseSpec = outcome.item
    kind = "error" if outcome.kind == "ok" else outcome.kind
    reason = outcome.reason if outcome.kind != "ok" else (
        f"the worker could not write the report: {status.get('error')}")
    if kind == "timeout":
        result.n_timeout += 1
    else:
        result.n_error += 1
    where = outcome.where or {}
    now = time.time()
    try:
        store.write_case(run_id, CaseReport(
            case_id=spec.case_id, name=spec.name, model=spec.model, data=spec.data,
            task=spec.task, status=kind, verdict="error", error=reason,
            started_at=outcome.started, finished_at=now, duration_s=now - outcome.started,
            attempts=outcome.attempt, node=where.get("node"), node_id=where.get("node_id"),
            gpu_ids=list(where.get("gpu_ids", [])), worker=where.get("worker"),
            source=origin(spec)))
    except ReportError as exc:  # e.g. the disk is full here too: say so, go on
        print(f"warning: case {spec.name}: {kind} ({reason}); its row was not written either "
              f"({exc}); --resume re-runs it", file=sys.stderr, flush=True)


def _write_deferred(store: Store, run_id: str, outcome: Outcome, result: RunResult) -> None:
    """A case the deadline kept from starting: a `deferred` row, never silent."""
    spec: CaseSpec = outcome.item
    result.n_deferred += 1
    deadline = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(result.deadline or 0))
    reason = (f"deferred: not started, it could not finish by the deadline {deadline} "
              f"({outcome.reason}); the next run starts with it")
    try:
        store.write_case(run_id, CaseReport(
            case_id=spec.case_id, name=spec.name, model=spec.model, data=spec.data,
            task=spec.task, status="deferred", verdict="deferred", error=reason,
            started_at=0.0, finished_at=0.0, duration_s=0.0, attempts=0,
            source=origin(spec)))
    except ReportError as exc:
        print(f"warning: case {spec.name}: deferred; its row was not written ({exc})",
              file=sys.stderr, flush=True)


def pool_size(resources: Resources, options: FleetOptions, n_todo: int | None,
              manifest: Manifest) -> int:
    """As many actors as the cluster's resources hold, capped by --max-concurrency and by
    the number of cases (`n_todo`; None: not known yet)."""
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
    return max(1, size if n_todo is None else min(size, n_todo or 1))
