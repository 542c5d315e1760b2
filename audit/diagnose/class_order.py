"""The model's class order, inferred when the labels' own encoding leaves it poor.

Labels are encoded in sorted order (strings) or as they are (integers) unless `classes:` says
otherwise (`audit/subject/classes.py`). A model trained on another encoding looks skill-less under
that one, though it is fine: a false alarm. So, before the probes run, one forward pass over
the rows: when the labels' own order leaves the model poor, the confusion matrix of true class
against predicted output unit is solved as an assignment (each class to one unit, maximizing
the mean per-class recall: the balanced accuracy) and, when that order gives clear skill, well
above the own order's, the case is audited under it. The `label_order` finding says so and
names the order: the audit never calls such a model healthy, because something that reads the
model's outputs (this audit, or a serving pipeline) disagrees with how it was trained.
A binary model with flipped labels is the two-class case of the same thing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from audit import faults
from audit.evidence.results import Finding
from audit.manifest.case import CaseSpec
from audit.probes import outcomes
from audit.probes.base import sample_rows
from audit.probes.tfutil import predict, subject_head
from audit.subject.classes import plain
from audit.subject.inputs import finite_rows

if TYPE_CHECKING:
    from audit.diagnose.verdict import Diagnosis
    from audit.subject import Subject

PROBE = "class_order"  # the findings' `probe`: this check, run before the probes
FAULT = faults.judged_by(PROBE).code


@dataclass(frozen=True)
class OrderSettings:
    """When an inferred order replaces the labels' own one; skills are balanced-accuracy gains
    (0 for any constant guess, 1 for perfect)."""

    poor_skill: float = 0.5  # only a model poor in its own order (diagnose's poor_skill)...
    clear_skill: float = 0.5  # ...is re-encoded, when the inferred order reaches this skill...
    min_gain: float = 0.3  # ...and beats the own order by this much
    max_rows: int = 4096  # rows predicted (a seeded sample of a bigger table)
    confidence: float = 0.9  # measured directly, like a flat output


SETTINGS = OrderSettings()


@dataclass(frozen=True)
class ClassOrder:
    """An inferred order: the label of output unit 0, 1, ..., and the skill under each order."""

    order: tuple[str | int, ...]
    skill_sorted: float  # under the labels' own encoding (strings sorted, integers as given)
    skill_inferred: float
    rows: int  # rows the skills were measured on

    def evidence(self) -> dict[str, Any]:
        return {"class_order": {"inferred": True, "order": list(self.order),
                                "skill_sorted": round(self.skill_sorted, 4),
                                "skill_inferred": round(self.skill_inferred, 4),
                                "rows": self.rows}}


def assignment(y: np.ndarray, units: np.ndarray, n_classes: int, n_units: int) -> np.ndarray:
    """`perm[c]`: the output unit of class `c` that maximizes the mean per-class recall (the
    Hungarian method on the row-normalized confusion matrix). Needs n_units >= n_classes."""
    from scipy.optimize import linear_sum_assignment

    confusion = np.zeros((n_classes, n_units))
    np.add.at(confusion, (y, units), 1.0)
    counts = confusion.sum(axis=1, keepdims=True)
    recall = np.divide(confusion, counts, out=np.zeros_like(confusion), where=counts > 0)
    rows, cols = linear_sum_assignment(recall, maximize=True)
    perm = np.empty(n_classes, dtype=np.int64)
    perm[rows] = cols
    return perm


def infer(subject: Subject, spec: CaseSpec,
          settings: OrderSettings = SETTINGS) -> tuple[Subject, ClassOrder | None]:
    """The subject re-encoded in the order its model's predictions fit, when its own order
    gives no skill and that one gives clear skill; else the subject as it is and None.

    Never asked when the manifest declares `classes:`, nor for regression."""

    if spec.classes is not None or subject.task == "regression" or subject.y.ndim != 1:
        return subject, None
    mask = finite_rows(subject.inputs, subject.y)
    idx = np.flatnonzero(mask)[sample_rows(int(mask.sum()), settings.max_rows, spec.seed)]
    if len(idx) < 2:
        return subject, None
    y, k = subject.y[idx].astype(np.int64), subject.n_classes
    try:
        raw = predict(subject.model, subject.inputs.take(idx))
    except Exception:  # the probes meet the same failure and report it
        return subject, None
    if not np.all(np.isfinite(raw)):
        return subject, None
    head = subject_head(subject)
    sorted_skill = outcomes.skill(y, raw, subject.task, k, head)
    if not (math.isfinite(sorted_skill) and sorted_skill < settings.poor_skill):
        return subject, None
    n_units = raw.shape[1] if raw.shape[1] > 1 else k
    if n_units < k:  # fewer units than classes: the head does not fit, not the order
        return subject, None
    scores = head.probabilities(raw)
    units = (np.argmax(scores, axis=1) if raw.shape[1] > 1
             else outcomes.predicted_classes(scores, k))
    perm = assignment(y, units, k, n_units)
    n_new = max(k, int(perm.max()) + 1)
    inferred = outcomes.skill(perm[y], raw, subject.task, n_new, head)
    if not (inferred >= settings.clear_skill and inferred - sorted_skill >= settings.min_gain):
        return subject, None
    names: list[str] = [f"(unit {j})" for j in range(n_new)]
    for c, unit in enumerate(perm):
        names[unit] = subject.class_names[c] if c < len(subject.class_names) else str(c)
    order = ClassOrder(tuple(plain(n) for n in names), sorted_skill, inferred, len(idx))
    recoded = dataclasses.replace(subject, y=perm[subject.y.astype(np.int64)],
                                  class_names=names, n_classes=n_new)
    return recoded, order


def judge(diagnosis: Diagnosis, order: ClassOrder,
          settings: OrderSettings = SETTINGS) -> Diagnosis:
    """The diagnosis (made under the inferred order) with `label_order` first. When the
    probes found a fault under that order, `label_order` is the primary fault: the labels are
    fixed first. When they found the model healthy, the model has no fault: the case keeps
    its verdict, and the order is an `info` note on the manifest (its `classes:` line)."""
    fix = faults.get(FAULT).fix
    recommendation = (
        f"{fix} The model's outputs fit the order {json.dumps(list(order.order))} (the label "
        f"of output unit 0, 1, ...): balanced-accuracy gain {order.skill_inferred:.2f}, "
        f"against {order.skill_sorted:.2f} with the labels' own encoding; this audit used that "
        f"order. If it is the model's: `classes: {json.dumps(list(order.order))}`.")
    # healthy in the order it was trained in: the manifest lacks `classes:`, the model has no
    # fault; a note, not a finding against it
    healthy = diagnosis.verdict == "healthy"
    finding = Finding(fault=FAULT, severity="info" if healthy else "warning",
                      confidence=settings.confidence, confirmed=False, probe=PROBE,
                      evidence=order.evidence(), recommendation=recommendation)
    if healthy:
        return dataclasses.replace(diagnosis, findings=[finding, *diagnosis.findings])
    return dataclasses.replace(diagnosis, primary_fault=FAULT,
                               findings=[finding, *diagnosis.findings])
