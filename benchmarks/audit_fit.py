"""`audit_vs_one_fit` (and its `_conv`, `_sequence` lines): one ordinary fit of the model
against the whole audit; and the per-probe time table."""

from __future__ import annotations

import math
from typing import Any

from harness import Mismatch, case_spec, log, median, timed

#: which audit-vs-fit line a zoo case's shape counts in (plain MLPs: `audit_vs_one_fit`; the
#: structured and two-headed models only appear in the per-probe table; exports cannot fit)
AUDIT_LINES = {"mlp": "audit_vs_one_fit", "cnn": "audit_vs_one_fit_conv",
               "text": "audit_vs_one_fit_sequence", "sequence": "audit_vs_one_fit_sequence"}


def one_fit(subject: Any) -> float:
    """One plain fit of a fresh clone under the model's own training config, timed (compile
    and fit, not the cloning)."""
    import keras

    from audit.probes.tfutil import (
        encode_targets,
        make_loss,
        make_optimizer,
        subject_head,
        to_tensors,
    )

    t = subject.training
    model = keras.models.clone_model(subject.model)
    y = encode_targets(subject.y, subject.task, t.loss, subject_head(subject).units)

    def fit() -> None:
        model.compile(optimizer=make_optimizer(t.optimizer, t.learning_rate, None,
                                               t.optimizer_config),
                      loss=make_loss(t.loss, t.from_logits))
        model.fit(to_tensors(subject.inputs.feed()), y, epochs=t.epochs or 30,
                  batch_size=t.batch_size, verbose=0)

    return timed(fit)[0]


def probe_times(report: Any) -> dict[str, float]:
    """Seconds per probe from a report's metrics; `load` is the rest of the case's time
    (loading the model and data, and the diagnosis, which takes milliseconds)."""
    from audit import probes

    spent = {r.probe: r.value for r in report.metrics if r.metric == "duration_s"}
    row = {name: float(spent.get(name, float("nan"))) for name in probes.PROBES}
    row["load"] = report.duration_s - sum(v for v in row.values() if math.isfinite(v))
    row["total"] = report.duration_s
    return row


def measure_audit(case: Any, subject: Any, with_fit: bool) -> tuple[dict[str, Any] | None,
                                                                   dict[str, Any]]:
    """One fit (if asked), then the whole audit of the same case, side by side; also the
    audit's per-probe times."""
    from audit.engine import audit_case

    fit_s = one_fit(subject) if with_fit else float("nan")
    audit_s, report = timed(lambda: audit_case(case_spec(case)))
    if report.status != "ok":
        raise Mismatch(f"{case.name}: the audit ended as {report.status}: {report.error}")
    times = {"case": case.name, **probe_times(report)}
    if not with_fit:
        return None, times
    t = subject.training
    return {"case": case.name, "ours_s": audit_s, "baseline_s": fit_s, "ratio": fit_s / audit_s,
            "fit_epochs": t.epochs or 30, "batch_size": t.batch_size, "rows": len(subject.inputs),
            "verdict": report.verdict, "primary_fault": report.primary_fault}, times


def probe_table(rows: list[dict[str, Any]]) -> str:
    """Seconds per probe per case (columns: load, each probe, total) and the median total."""
    from audit import probes

    header = ["case", "load", *probes.PROBES, "total"]
    lines = [" ".join(f"{h:>12}" if i else f"{h:<30}" for i, h in enumerate(header))]
    for row in rows:
        cells = " ".join(f"{row[h]:>12.2f}" for h in header[1:])
        lines.append(f"{row['case']:<30} {cells}")
    if rows:
        lines.append(f"median case total: {median([r['total'] for r in rows]):.2f} s")
    return "\n".join(lines)


def audit_rows(cases: list[Any]) -> list[dict[str, Any]]:
    """Audit each case once (all probes, default budget) and return its per-probe times."""
    from audit.subject import load_subject

    rows = []
    for case in cases:
        _, row = measure_audit(case, load_subject(case_spec(case)), with_fit=False)
        rows.append(row)
        log(f"  {case.name}: {row['total']:.2f} s")
    return rows
