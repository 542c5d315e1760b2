"""Running a manifest's cases on Ray: actors sized by `resources`, a bounded window of cases
in flight, retries on fresh actors, per-case time limits, resume, progress, clean stops.

One job per module: `types` (the public types), `worker` (the actor: temp folder, TensorFlow
and GPU setup, running a case), `pool` (the scheduler; knows no probe), `session` (the Ray
session and signals), `progress` (progress and the run row), `run` (a run from plan to run
row) and `testing` (failure injection for tests; never in the production options).

The driver imports Ray but never TensorFlow; actors import TensorFlow when they start.
"""

from __future__ import annotations

from audit.fleet.pool import ActorPool, Outcome
from audit.fleet.run import pool_size, run_fleet, run_manifest
from audit.fleet.session import loopback_only
from audit.fleet.types import FleetError, FleetOptions, RunResult, new_run_id
from audit.fleet.worker import configure_tensorflow, gpu_memory_limit_mb

__all__ = [
    "ActorPool",
    "FleetError",
    "FleetOptions",
    "Outcome",
    "RunResult",
    "configure_tensorflow",
    "gpu_memory_limit_mb",
    "loopback_only",
    "new_run_id",
    "pool_size",
    "run_fleet",
    "run_manifest",
]
