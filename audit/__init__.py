"""Flatline: finds why a fleet of Keras models stopped responding to their inputs."""

from __future__ import annotations

from audit.engine import audit_case
from audit.evidence.results import CaseReport, Finding, MetricRow, ProbeResult
from audit.manifest.case import Budget, CaseSpec, Resources, Training
from audit.util import compat

compat.install()  # old module paths (audit.spec, audit.results, ...) for one release

__version__ = "0.1.0"

__all__ = ["Budget", "CaseReport", "CaseSpec", "Finding", "MetricRow", "ProbeResult",
           "Resources", "Training", "__version__", "audit_case"]
