"""Synthetic but complete reports for the report, diff and HTML tests (no Ray, no TensorFlow).

Each case carries what the probes write: sensitivity responses at three noise scales and a
skill, retraining skills per change and seed with their details, per-layer shares and
gradient norms, class counts, findings with evidence. Seeded, so every run is the same.
"""

from __future__ import annotations

import json

import numpy as np

from audit import faults
from audit.evidence.results import CaseReport, Finding, MetricRow
from audit.reports import RunRow, Store

T0 = 1_790_000_000.0
PLANS = {"baseline": "the model's own training config", "lr_x100": "learning rate x100",
         "adam": "the Adam optimizer"}
VERDICTS = ("healthy", "flat", "impaired", "error")
FAULTS = {"flat": "lr_too_low", "impaired": "class_imbalance"}


def case(name: str, verdict: str, rng: np.random.Generator, fault: str | None = None,
         skill: float | None = None, started: float = T0) -> CaseReport:
    """One case as the engine would report it, with every metric the page draws."""
    fault = fault if fault is not None else FAULTS.get(verdict)
    if verdict == "error":
        return CaseReport(case_id=f"{name}-00000000", name=name, model=f"/m/{name}.keras",
                          data=f"/d/{name}.parquet", status="error", verdict="error",
                          error=f"/m/{name}.keras: not a Keras model", started_at=started,
                          finished_at=started + 1, duration_s=1.0)
    healthy = verdict == "healthy"
    if skill is None:
        skill = float(rng.uniform(0.7, 0.95) if healthy else rng.uniform(-0.05, 0.2))
    gain = 1.0 if healthy else 0.01
    metrics = [MetricRow(probe="sensitivity", metric="skill", value=skill),
               MetricRow(probe="sensitivity", metric="duration_s", value=0.1, detail="ok")]
    for scale in (0.01, 0.1, 1.0):
        metrics.append(MetricRow(probe="sensitivity", metric=f"response_noise_{scale:g}",
                                 value=float(gain * scale * rng.uniform(0.8, 1.2))))
    metrics.append(
        MetricRow(
            probe="sensitivity",
            metric="details",
            value=float("nan"),
            detail=json.dumps({"most_influential_features": ["x2", "x0", "x1"]}),
        )
    )
    metrics.append(MetricRow(probe="retrain", metric="original.skill", value=skill))
    variants = {}
    for plan, change in PLANS.items():
        base = 0.9 if plan == "adam" and not healthy else skill
        for seed in range(3):
            metrics.append(
                MetricRow(
                    probe="retrain",
                    metric=f"{plan}.skill.seed{seed}",
                    value=float(base + rng.normal(0, 0.01)),
                )
            )
        variants[plan] = {
            "change": change,
            "stopped": ["epochs", "early_success", "epochs"],
            "final_loss": [0.5, 0.2, None],
        }
    metrics.append(
        MetricRow(
            probe="retrain",
            metric="details",
            value=float("nan"),
            detail=json.dumps({"variants": variants}),
        )
    )
    layers = ["dense", "dense_1", "dense_2"]
    for i, layer in enumerate(layers[:-1]):
        metrics.append(
            MetricRow(
                probe="activations",
                metric=f"dead_fraction.{layer}",
                value=0.0 if healthy else 0.2 * (i + 1),
            )
        )
    metrics.append(
        MetricRow(
            probe="activations",
            metric="details",
            value=float("nan"),
            detail=json.dumps({"layers": layers[:-1]}),
        )
    )
    for i, layer in enumerate(layers):
        metrics.append(
            MetricRow(
                probe="gradients",
                metric=f"grad_norm.{layer}",
                value=0.0 if (i == 0 and not healthy) else 10.0**-i,
            )
        )
    metrics.append(
        MetricRow(
            probe="gradients",
            metric="details",
            value=float("nan"),
            detail=json.dumps({"layers": layers}),
        )
    )
    metrics.append(
        MetricRow(
            probe="data",
            metric="details",
            value=float("nan"),
            detail=json.dumps({"class_counts": {"0": 90, "1": 10}}),
        )
    )
    findings = (
        []
        if fault is None
        else [
            Finding(
                fault=fault,
                severity="critical",
                confidence=0.8,
                confirmed=True,
                probe="retrain",
                evidence={
                    "skill_with_change": [0.9, 0.91, 0.89],
                    "skill_own_config": [0.01, 0.02],
                    "effect": 0.88,
                },
                recommendation=faults.get(fault).fix,
            )
        ]
    )
    return CaseReport(
        case_id=f"{name}-00000000",
        name=name,
        model=f"/m/{name}.keras",
        data=f"/d/{name}.parquet",
        task="binary",
        verdict=verdict,
        primary_fault=fault,
        started_at=started,
        finished_at=started + 2,
        duration_s=2.0,
        node="127.0.0.1",
        node_id="ab" * 28,
        worker="actor-1",
        output="head",
        findings=findings,
        metrics=metrics,
    )


def write_run(
    store: Store, run_id: str, cases: list[CaseReport], name: str = "nightly", started: float = T0
) -> None:
    for report in cases:
        store.write_case(run_id, report)
    store.write_run(
        run_id,
        RunRow(
            name=name,
            status="finished",
            manifest="/jobs/nightly.yaml",
            output=store.output,
            started_at=started,
            finished_at=started + 3725,
            n_cases=len(cases),
            n_ok=sum(c.status == "ok" for c in cases),
            concurrency=2,
            package_version="0.1.0",
        ),
    )


def fleet(n: int, seed: int = 0, started: float = T0) -> list[CaseReport]:
    """`n` cases cycling through the verdicts."""
    rng = np.random.default_rng(seed)
    return [
        case(f"model-{i:04d}", VERDICTS[i % len(VERDICTS)], rng, started=started) for i in range(n)
    ]
