"""The actor side: a `CaseWorker` sets up its temp folder and TensorFlow once, then audits
cases and writes their reports itself, returning only a small status.

Each worker keeps its temp files (TensorFlow's `__autograph_generated_file*.py` among them) in
its own folder, `<temp root>/flatline-workers/<host>-pid<pid>-<random>/`, set as `TMPDIR` and
`tempfile.tempdir` before TensorFlow is imported, and removed when the worker is retired
(recycled or the run ends). A worker that was killed cannot clean up: the next worker started on
that host (and the driver when the run ends) removes folders whose process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.fleet.testing import Faults, dying_store, fires, maybe_inject
from audit.manifest.case import CaseSpec, Resources
from audit.models.imports import defer_unused_imports
from audit.reports import ReportError, Store

__all__ = [
    "WORKERS_FOLDER",
    "CaseWorker",
    "WorkerConfig",
    "clear_run_folders",
    "clear_stale_folders",
    "configure_tensorflow",
    "gpu_memory_limit_mb",
    "make_temp_folder",
    "workers_parent",
]

WORKERS_FOLDER = "flatline-workers"


@dataclass(frozen=True)
class WorkerConfig:
    """What every actor of a run is told when it starts."""

    output: str
    run_id: str
    resources: Resources
    temp_root: str | None = None  # None: the worker's own system temp folder
    run_tag: str = "run"  # in the names of this run's worker folders (the driver waits for them)
    faults: Faults = field(default_factory=dict)  # testing only (audit.fleet.testing)


class CaseWorker:
    """A Ray actor: a private temp folder and TensorFlow set up once, then cases audited and
    their reports written.

    The constructor does the slow part (importing TensorFlow, Keras and the probes, ~3 s),
    so it starts the moment the driver creates the actor, while the driver is still expanding
    the manifest; an actor then serves `execution.cases_per_actor` cases before it is
    recycled."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        # before TensorFlow is imported
        self.temp_folder = make_temp_folder(config.temp_root, config.run_tag)
        atexit.register(self.close)
        self.store = Store(config.output)
        self.identity = self._start_tensorflow()

    def _start_tensorflow(self) -> dict[str, Any]:
        """Import and configure TensorFlow before any op, import what a case needs; return
        where this actor runs."""
        import ray

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        context = ray.get_runtime_context()
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        defer_unused_imports()  # before TensorFlow imports Keras
        configure_tensorflow(self.config.resources, gpu_ids)
        import audit.engine  # noqa: F401  (Keras and every probe: not the first case's cost)

        return {"node": ray.util.get_node_ip_address(), "node_id": context.get_node_id(),
                "gpu_ids": gpu_ids, "worker": context.get_actor_id(), "pid": os.getpid()}

    def setup(self) -> dict[str, Any]:
        """Where this actor runs; resolves once the constructor is done (it is ready)."""
        return self.identity

    def run(self, spec: CaseSpec, attempt: int) -> dict[str, Any]:
        """Audit one case, write its report, return a small status."""
        from audit.engine import audit_case  # in the actor only: the engine loads TensorFlow

        injection = self.config.faults.get(spec.name)
        maybe_inject(injection, attempt)
        report = audit_case(spec)
        report.attempts = attempt
        report.node = self.identity.get("node")
        report.node_id = self.identity.get("node_id")
        report.gpu_ids = list(self.identity.get("gpu_ids", []))
        report.worker = self.identity.get("worker")
        store = self.store
        if injection is not None and injection.kind == "exit_while_writing" and \
                fires(injection, attempt):

            store = dying_store(self.config.output)  # type: ignore[assignment]
        try:
            store.write_case(self.config.run_id, report)
        except ReportError as exc:  # e.g. no space left: the driver records the case
            return {"case_id": report.case_id, "status": "error", "verdict": "error",
                    "written": False, "error": str(exc)}
        return {"case_id": report.case_id, "status": report.status, "verdict": report.verdict}

    def close(self) -> bool:
        """Remove this worker's temp folder (called before the actor is retired, and at exit)."""
        shutil.rmtree(self.temp_folder, ignore_errors=True)
        return not self.temp_folder.exists()


# ---------------------------------------------------------------- the temp folder


def workers_parent(temp_root: str | None) -> Path:
    """`<temp root>/flatline-workers`: the one parent of every worker's temp folder."""
    return Path(temp_root or tempfile.gettempdir()) / WORKERS_FOLDER


def make_temp_folder(temp_root: str | None, tag: str = "run") -> Path:
    """Clear stale worker folders, then make this process's own and point `TMPDIR` and
    `tempfile` at it (TensorFlow's autograph writes its generated files there)."""
    parent = workers_parent(temp_root)
    parent.mkdir(parents=True, exist_ok=True)
    clear_stale_folders(parent)
    folder = Path(tempfile.mkdtemp(prefix=f"{_host()}-pid{os.getpid()}-{tag}-", dir=parent))
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
    return folder


def clear_stale_folders(parent: Path) -> list[Path]:
    """Remove the folders under `parent` left by workers of this host whose process is gone
    (a killed or crashed worker cannot remove its own); returns the ones removed."""
    removed = []
    prefix = f"{_host()}-pid"
    with contextlib.suppress(FileNotFoundError):
        for entry in parent.iterdir():
            if not entry.name.startswith(prefix):
                continue  # another host's (a shared temp folder): its pids mean nothing here
            pid_text = entry.name[len(prefix):].split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def clear_run_folders(parent: Path, tag: str, wait_s: float = 10.0) -> list[Path]:
    """After a run: remove the folders of its workers that were killed (time limits, crashes,
    a stop), waiting up to `wait_s` for their processes to go (Ray reports an actor dead a
    moment before its process exits); stale folders of other runs go too."""
    removed = clear_stale_folders(parent)
    deadline = time.monotonic() + wait_s
    while parent.exists() and any(parent.glob(f"{_host()}-pid*-{tag}-*")) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
        removed += clear_stale_folders(parent)
    return removed


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    with contextlib.suppress(OSError, ValueError, IndexError):  # a zombie is gone for us
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[0] != "Z"
    return True


# ---------------------------------------------------------------- TensorFlow and GPUs


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
