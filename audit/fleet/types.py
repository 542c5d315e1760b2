"""The fleet's public types: how to run (`FleetOptions`), what happened (`RunResult`), and
the one error a run that cannot start or go on raises (`FleetError`)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

from audit.errors import FleetError
from audit.manifest.case import MlflowPublish, slug
from audit.reports.columns import CaseCounts
from audit.util.deadline import check_deadline

__all__ = ["DEFERRED_EXIT", "FleetError", "FleetOptions", "RunResult", "new_run_id"]

#: the exit code of a run in which nothing failed but the deadline deferred some cases
DEFERRED_EXIT = 3


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
    temp_root: str | None = Field(None, description="where each worker makes its own temp "
                                  "folder (under <temp_root>/flatline-workers/); default: "
                                  "the worker's system temp folder")
    publish_mlflow: MlflowPublish | None = Field(
        None, description="publish the run to MLflow (`--publish mlflow`) when the manifest "
        "has no `publish.mlflow` of its own")
    fresh: bool = Field(False, description="audit every case, reusing none (`--fresh`)")
    longest_first: bool = Field(True, description="start cases by expected cost, longest "
                                "first (False: in manifest order, e.g. for a comparison)")
    deadline: str | None = Field(
        None, description="overrides `execution.deadline` (`--deadline`): e.g. '06:00 "
        "Europe/Berlin' or '5h'")

    _deadline = field_validator("deadline")(
        lambda value: value if value is None else check_deadline(value))


@dataclass(kw_only=True)
class RunResult(CaseCounts):
    """What happened to a run; `exit_code` is the CLI's: 0 every case ok (reused ones
    included), 1 something failed or the run stopped, `DEFERRED_EXIT` (3) nothing failed but
    the deadline deferred some cases (the next run starts with them)."""

    run_id: str
    output: str
    n_resumed: int = 0  # cases already reported before this invocation
    stopped: bool = False
    concurrency: int = 0
    duration_s: float = 0.0
    published: list[str] = field(default_factory=list)  # one line per place published to
    warnings: list[str] = field(default_factory=list)  # e.g. a publishing step that failed
    deadline: float | None = None  # epoch seconds, when the run had one

    @property
    def n_missing(self) -> int:
        return self.n_cases - self.n_ok - self.n_failed - self.n_deferred

    @property
    def exit_code(self) -> int:
        if self.n_failed or self.n_missing or self.stopped:
            return 1
        return DEFERRED_EXIT if self.n_deferred else 0


def new_run_id(name: str) -> str:
    """`<name>-<YYYYmmdd-HHMMSS>-<4 hex>`: sortable, unique, a safe folder name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{slug(name, 40)}-{stamp}-{uuid.uuid4().hex[:4]}"
