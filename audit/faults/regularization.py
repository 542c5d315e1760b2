"""Over-regularization: weight or activity penalties, or dropout, so strong that the network
cannot fit the signal and its output flattens."""

from __future__ import annotations

from dataclasses import dataclass

from audit.evidence.keys import Config
from audit.faults.codes import Code
from audit.faults.plan import Plan
from audit.faults.unit import FULL, PARTIAL, Counterfactual, Evidence, Fault, PlanContext, Support
from audit.models.vocab import regularization


@dataclass(frozen=True)
class RegularizationLimits:
    #: an l1 + l2 factor this large dominates the loss of a standardized target (Keras'
    #: own default factor is 0.01); `penalty_hint` and up is a signal
    penalty: float = 0.1
    penalty_hint: float = 0.01
    dropout: float = 0.7  # dropping this share of units leaves too little to learn from
    dropout_hint: float = 0.5


def _over_regularized(ev: Evidence, lim: RegularizationLimits) -> Support | None:
    penalty, dropout = ev(Config.WEIGHT_PENALTY), ev(Config.DROPOUT)
    evidence = dict(weight_penalty_max=penalty, dropout_max=dropout)
    if penalty >= lim.penalty or dropout >= lim.dropout:
        return Support(FULL, evidence)
    if penalty >= lim.penalty_hint or dropout >= lim.dropout_hint:
        return Support(PARTIAL, evidence)
    return None


def _unregularized(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    penalty, dropout = regularization(ctx.subject.model)
    if penalty <= 0 and dropout <= 0:
        return []
    lim = OVER_REGULARIZED.limits
    suspect = penalty >= lim.penalty_hint or dropout >= lim.dropout_hint
    return [cf.plan(suspect=suspect, architecture="unregularized")]


UNREGULARIZED = Counterfactual("unregularized",
                               "weight and activity penalties removed, dropout off",
                               Code.OVER_REGULARIZED, _unregularized)

OVER_REGULARIZED = Fault(
    Code.OVER_REGULARIZED,
    "Weight or activity penalties, or dropout, are so strong that the network cannot fit the "
    "signal and its output flattens.",
    "Weaken the regularization: lower the l1/l2 factors (try x0.01, or remove them) and the "
    "dropout rates (0.1-0.3 is typical), then re-tune on validation.",
    probe="config", rule=_over_regularized, limits=RegularizationLimits(),
    counterfactuals=(UNREGULARIZED,))
