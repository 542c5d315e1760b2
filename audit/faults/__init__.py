"""The fault vocabulary: every code one declared unit (`Fault`), in one registry.

A unit owns its meaning and fix, its root-cause rank (its place in `FAULTS`: when two changes
work equally well, the earlier fault explains the later), its static rule and thresholds, and
the counterfactuals that test it. `diagnose` and the retrain probe iterate this registry and
name no code themselves. Adding a fault means its unit here, its zoo scenario and its README
line.
"""

from __future__ import annotations

from audit.faults import dataset, network, regularization, symptoms, training
from audit.faults.codes import Code
from audit.faults.plan import CHANGE_FIELDS, Plan
from audit.faults.training import lr_ladder, rate_rung
from audit.faults.unit import (
    CONFIRMATION,
    FULL,
    HEALTH,
    PARTIAL,
    SEVERITIES,
    WEAK,
    Counterfactual,
    Evidence,
    Fault,
    PlanContext,
    Severity,
    Support,
)

#: every fault, causes in root-cause order, then the symptoms
FAULTS: dict[Code, Fault] = {fault.code: fault for fault in (
    dataset.BAD_DATA,
    training.LOSS_MISMATCH,
    dataset.UNSCALED_TARGETS,
    dataset.UNSCALED_INPUTS,
    dataset.CLASS_IMBALANCE,
    training.LR_TOO_HIGH,
    training.LR_TOO_LOW,
    regularization.OVER_REGULARIZED,
    network.EXPLODING_GRADIENT,
    network.DEAD_RELU,
    network.SATURATED_ACTIVATIONS,
    network.VANISHING_GRADIENT,
    training.OPTIMIZER_STALLED,
    training.UNDERTRAINED,
    dataset.LABEL_ORDER,
    symptoms.FLAT_OUTPUT,
    symptoms.BELOW_REFERENCE,
    symptoms.NO_SKILL,
)}

#: the order the retrain probe plans counterfactuals in (suspected ones train first anyway)
PLANNING: tuple[Counterfactual, ...] = (
    dataset.STANDARDIZE_INPUTS,
    dataset.STANDARDIZE_TARGETS,
    dataset.REPAIR_LABELS,
    dataset.DROP_BAD_ROWS,
    dataset.RELABEL_DISPUTED,
    training.RATE_UP,
    training.RATE_DOWN,
    training.ADAM,
    training.FIT_LOSS,
    dataset.CLASS_WEIGHTS,
    network.RESTORE_ACTIVATION,
    network.NONSATURATING,
    network.DEFAULT_INIT,
    regularization.UNREGULARIZED,
    network.CLIP_GRADIENTS,
    training.TRAIN_LONGER,
)

FAULT_CODES: tuple[str, ...] = tuple(FAULTS)
#: symptoms name what is wrong when no cause could be named; the causes are judged by their
#: rules and counterfactuals; the rest by a check of their own before the probes run
SYMPTOM_CODES: tuple[str, ...] = tuple(c for c, f in FAULTS.items() if f.symptom)
CAUSES: tuple[Fault, ...] = tuple(f for f in FAULTS.values()
                                  if not f.symptom and not f.judged_by)
CAUSE_CODES: tuple[str, ...] = tuple(f.code for f in CAUSES)


def get(code: str) -> Fault:
    """The fault for `code`; the error lists the valid codes."""
    try:
        return FAULTS[Code(code)]
    except ValueError:
        raise KeyError(f"unknown fault code {code!r}; valid codes are {list(FAULTS)}") from None


def symptom(kind: str) -> Fault:
    """The symptom fault for `kind` ("flat": the output does not move; else it moves
    but predicts no better than the trivial predictor: "unskilled")."""
    found = [f for f in FAULTS.values() if f.symptom == kind]
    if not found:
        raise KeyError(f"unknown symptom {kind!r}; valid symptoms are "
                       f"{[f.symptom for f in FAULTS.values() if f.symptom]}")
    return found[0]


def judged_by(check: str) -> Fault:
    """The fault a check of its own judges before the probes run (e.g. "class_order")."""
    found = [f for f in FAULTS.values() if f.judged_by == check]
    if not found:
        raise KeyError(f"no fault is judged by {check!r}; checks are "
                       f"{[f.judged_by for f in FAULTS.values() if f.judged_by]}")
    return found[0]


def settled(evidence: Evidence) -> str | None:
    """Why the evidence so far already settles the case (a definitive cause no counterfactual
    can change), or None: the expensive probes that declare so are then not run."""
    for fault in CAUSES:
        reason = fault.settles(evidence) if fault.settles else None
        if reason:
            return f"{reason} ({fault.code})"
    return None


def root_cause_rank(code: str) -> float:
    """1 for the first root cause in `FAULTS`, falling to 0 for the last."""
    order = list(CAUSE_CODES)
    return 1 - order.index(code) / max(len(order) - 1, 1)


__all__ = [
    "CAUSES",
    "CAUSE_CODES",
    "CHANGE_FIELDS",
    "CONFIRMATION",
    "FAULTS",
    "FAULT_CODES",
    "FULL",
    "HEALTH",
    "PARTIAL",
    "PLANNING",
    "SEVERITIES",
    "SYMPTOM_CODES",
    "WEAK",
    "Code",
    "Counterfactual",
    "Evidence",
    "Fault",
    "Plan",
    "PlanContext",
    "Severity",
    "Support",
    "get",
    "judged_by",
    "lr_ladder",
    "rate_rung",
    "root_cause_rank",
    "settled",
    "symptom",
]
