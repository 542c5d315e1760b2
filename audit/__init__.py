"""Flatline: finds why a fleet of Keras models stopped responding to their inputs."""

from __future__ import annotations

from audit.engine import audit_case
from audit.results import CaseReport, Finding, MetricRow, ProbeResult
from audit.spec import Budget, CaseSpec, Resources, Training

__version__ = "0.1.0"

__all__ = ["Budget", "CaseReport", "CaseSpec", "Finding", "MetricRow", "ProbeResult",
           "Resources", "Training", "__version__", "audit_case"]
