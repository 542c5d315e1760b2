"""Typed results that cross layers: a probe's result, a finding, a case's report.

Plain dataclasses with no dependencies, so `reports` and `fleet` can handle them without
importing TensorFlow or the probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ProbeStatus = Literal["ok", "not_applicable", "error"]
CaseStatus = Literal["ok", "error", "timeout", "skipped", "deferred"]
#: `deferred`: not audited, the run's deadline came first
Verdict = Literal["healthy", "flat", "impaired", "error", "deferred"]


@dataclass
class ProbeResult:
    """What one probe measured: named numeric metrics plus short text details."""

    probe: str
    status: ProbeStatus = "ok"
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    #: parts of the probe that failed, each costing only itself (one change of the retrain
    #: probe): the metric row's name -> its one-line reason; the rest of the probe still ran
    part_errors: dict[str, str] = field(default_factory=dict)

    def get(self, metric: str, default: float = float("nan")) -> float:
        return float(self.metrics.get(metric, default))


@dataclass(kw_only=True)
class Finding:
    """One diagnosed fault with the numbers that led there and what to do about it."""

    fault: str
    severity: Literal["critical", "warning", "info"]
    confidence: float
    confirmed: bool
    probe: str
    evidence: dict[str, Any]
    recommendation: str


@dataclass(kw_only=True)
class MetricRow:
    """One probe metric in the report's long format. `detail` is a short note (the probe's
    status, its error) or, on the row named `probes.keys.DETAILS`, the probe's details as
    they are: the report layer stores them as JSON text (`reports.schema.detail_text`)."""

    probe: str
    metric: str
    value: float
    detail: str | dict[str, Any] | None = None


@dataclass
class CaseReport:
    """Everything the report stores about one audited case."""

    case_id: str
    name: str
    model: str
    data: str
    task: str | None = None
    status: CaseStatus = "ok"
    verdict: Verdict = "error"
    primary_fault: str | None = None
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    duration_s: float = 0.0
    attempts: int = 1
    node: str | None = None
    gpu_ids: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    worker: str | None = None  # the Ray actor that ran the case (set by the fleet)
    output: str | None = None  # the model output (head) the case audited
    node_id: str | None = None  # the Ray node id of the worker (set by the fleet)
    source: dict[str, Any] | None = None  # a registry case's origin (audit.manifest.sources.origin)
    model_format: str | None = None  # how the model was loaded (`model_files.MODEL_FORMATS`)
    reused_from: str | None = None  # the run it was audited in, when a later run reused it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
