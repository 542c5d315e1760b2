"""Probe results -> findings, one primary fault, and a verdict (`verdict.diagnose`).

Probes measure; this package judges, generic over the fault units in `audit.faults`:
`counterfactuals` reads what retraining showed, `ranking` orders the candidate causes,
`thresholds` holds the judgement's own numbers, `class_order` judges a model that may read its
classes in another order than the labels.
"""

from __future__ import annotations

from audit.diagnose.counterfactuals import Outcome, bars, counterfactual_outcomes, static_support
from audit.diagnose.ranking import rank_candidates
from audit.diagnose.thresholds import THRESHOLDS, Thresholds
from audit.diagnose.verdict import Diagnosis, diagnose

__all__ = ["THRESHOLDS", "Diagnosis", "Outcome", "Thresholds", "bars", "counterfactual_outcomes",
           "diagnose", "rank_candidates", "static_support"]
