"""`audit_case(spec) -> CaseReport`: load, run the probes, diagnose. No Ray here."""

from __future__ import annotations

import time

from audit import faults, probes
from audit.diagnose import class_order, diagnose
from audit.evidence import keys
from audit.evidence.results import CaseReport, MetricRow, ProbeResult
from audit.manifest.case import CaseSpec
from audit.manifest.sources import FetchError, fetch, origin
from audit.subject import SubjectError, load_subject


def probe_settings(name: str, spec: CaseSpec) -> probes.ProbeSettings:
    """The settings of probe `name` for this case: its seed, and the `budget:` fields the
    probe declares it takes (`Probe.budget`)."""
    probe = probes.get(name)
    values: dict[str, object] = {"seed": spec.seed}
    values.update({key: getattr(spec.budget, field) for key, field in probe.budget.items()})
    return probe.settings(**values)


def run_probes(spec: CaseSpec, subject: object) -> dict[str, ProbeResult]:
    """Every probe the case asks for, in the registry's order (cheap ones first). A costly
    probe is not run once the cheaper ones already settle the case (a constant label: no
    retraining can restore skill); its result says why."""
    wanted = set(spec.probes)
    for name in wanted:
        probes.get(name)  # unknown names fail here, listing the valid ones
    results: dict[str, ProbeResult] = {}
    for name, probe in probes.PROBES.items():
        if name not in wanted:
            continue
        reason = faults.settled(faults.Evidence(results)) if probe.skipped_when_settled else None
        if reason:
            results[name] = ProbeResult(probe=name, status="not_applicable",
                                        error=f"not needed: the evidence settles the case: "
                                              f"{reason}")
        else:
            results[name] = probes.run_probe(probe, subject, probe_settings(name, spec))
    return results


def audit_case(spec: CaseSpec) -> CaseReport:
    """Audit one (model, dataset) case; bad input ends as an `error` report, never a raise.
    A case from a registry is fetched first (its model downloaded, cached by version)."""
    started = time.time()
    report = CaseReport(case_id=spec.case_id, name=spec.name, model=spec.model, data=spec.data,
                        task=spec.task, started_at=started, source=origin(spec))
    try:
        subject = load_subject(fetch(spec))
    except (SubjectError, FetchError) as exc:
        report.status, report.verdict, report.error = "error", "error", str(exc)
    else:
        report.task = subject.task
        report.output = subject.output_name
        subject, order = class_order.infer(subject, spec)  # None: the labels' own order fits
        report.model_format = subject.model_format
        results = run_probes(spec, subject)
        diagnosis = diagnose(results, subject.task)
        if order is not None:
            diagnosis = class_order.judge(diagnosis, order)
        report.verdict = diagnosis.verdict
        report.primary_fault = diagnosis.primary_fault
        report.findings = diagnosis.findings
        report.metrics = metric_rows(results)
    report.finished_at = time.time()
    report.duration_s = report.finished_at - started
    return report


def metric_rows(results: dict[str, ProbeResult]) -> list[MetricRow]:
    """Probe results in the report's long format, including each probe's status and time,
    and its details (metric `details`; the report stores them as JSON)."""
    rows: list[MetricRow] = []
    for name, result in results.items():
        rows.append(
            MetricRow(
                probe=name, metric="duration_s", value=result.duration_s, detail=result.status
            )
        )
        if result.error:
            rows.append(
                MetricRow(probe=name, metric="error", value=float("nan"), detail=result.error)
            )
        rows.extend(
            MetricRow(probe=name, metric=part, value=float("nan"), detail=reason)
            for part, reason in result.part_errors.items()
        )
        rows.extend(
            MetricRow(probe=name, metric=key, value=float(value), detail=None)
            for key, value in result.metrics.items()
        )
        if result.details:  # what the report's charts draw (top features, per-seed stops)
            rows.append(
                MetricRow(
                    probe=name, metric=keys.DETAILS, value=float("nan"), detail=dict(result.details)
                )
            )
    return rows
