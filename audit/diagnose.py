"""Probe results -> findings, one primary fault, and a verdict. (Preliminary: data/config rules.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from audit import faults
from audit.results import Finding, ProbeResult


@dataclass
class Diagnosis:
    verdict: str
    primary_fault: str | None
    findings: list[Finding] = field(default_factory=list)


def diagnose(results: dict[str, ProbeResult], task: str) -> Diagnosis:
    findings: list[Finding] = []
    data = results.get("data")
    if data is not None and data.status == "ok" and data.get("bad_rows", 0) > 0:
        findings.append(Finding("bad_data", "critical", 0.9, False, "data",
                                {"bad_rows": data.get("bad_rows")}, faults.get("bad_data").fix))
    config = results.get("config")
    if config is not None and config.status == "ok" and config.get("loss_fits_labels", 1) == 0:
        findings.append(Finding("loss_mismatch", "critical", 0.9, False, "config",
                                {"problem": config.details.get("loss_problem")},
                                faults.get("loss_mismatch").fix))
    primary = findings[0].fault if findings else None
    return Diagnosis("impaired" if findings else "healthy", primary, findings)
