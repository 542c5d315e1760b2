"""The fleet's public types: how to run (`FleetOptions`), what happened (`RunResult`), and
the one error a run that cannot start or go on raises (`FleetError`)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import FleetError
from audit.manifest.case import MlflowPublish, slug
from audit.reports.columns import CaseCounts

__all__ = ["FleetError", "FleetOptions", "RunResult", "new_run_id"]


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


@dataclass(kw_only=True)
class RunResult(CaseCounts):
    """What happened to a run; `exit_code` is the CLI's (0 all ok, 1 something failed)."""

    run_id: str
    output: str
    n_resumed: int = 0  # cases already reported before this invocation
    stopped: bool = False
    concurrency: int = 0
    duration_s: float = 0.0
    published: list[str] = field(default_factory=list)  # one line per place published to
    warnings: list[str] = field(default_factory=list)  # e.g. a publishing step that failed

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
