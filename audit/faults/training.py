"""Faults of the training config: the loss, the learning rate, the optimizer, the length."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from audit.evidence.keys import Config, Gradients
from audit.faults.codes import Code
from audit.faults.dataset import label_problem
from audit.faults.plan import Plan
from audit.faults.unit import FULL, PARTIAL, Counterfactual, Evidence, Fault, PlanContext, Support
from audit.models.vocab import (
    ADAM_LIKE_OPTIMIZERS,
    CATEGORICAL_LOSSES,
    REGRESSION_LOSSES,
    activation_name,
    fitting_loss,
    typical_lr,
)

if TYPE_CHECKING:  # the type only: faults judge a subject the layer below assembles
    from audit.subject import Subject

# ---------------------------------------------------------------- loss_mismatch

#: heads whose outputs are strictly positive: Keras' categorical cross-entropies (without
#: logits) divide the outputs by their sum, so such a head forms a distribution over the
#: classes whatever its activation (a multi-unit sigmoid trains; an exponential is a softmax)
POSITIVE_HEADS = frozenset({"softmax", "sigmoid", "softplus", "exponential"})
#: heads whose outputs lie in [0, 1]: binary cross-entropy (without logits) clips its inputs
#: there, so any other head loses its gradient wherever it leaves the range
UNIT_INTERVAL_HEADS = frozenset({"softmax", "sigmoid", "hard_sigmoid"})


def head_problem(subject: Subject) -> str | None:
    """Why the loss, output head and labels do not fit together as Keras computes them, or
    None when they do (keras/src/backend/tensorflow/nn.py: `categorical_crossentropy` and
    `sparse_categorical_crossentropy` normalize the outputs by their sum, `binary_crossentropy`
    clips them to [eps, 1 - eps]; class labels reach a multi-unit head one-hot)."""
    t = subject.training
    model = subject.model
    units = subject.n_outputs
    head = activation_name(model.layers[-1]) if model.layers else None
    head = head or "linear"
    loss = t.loss
    if subject.task == "regression":
        if loss not in REGRESSION_LOSSES:
            return f"loss {loss} is for classification but the labels are continuous"
        y = subject.y
        finite = y[y == y]
        if head == "sigmoid" and finite.size and (finite.min() < 0 or finite.max() > 1):
            return "a sigmoid output cannot reach targets outside [0, 1]"
        if head == "tanh" and finite.size and (finite.min() < -1 or finite.max() > 1):
            return "a tanh output cannot reach targets outside [-1, 1]"
        if head == "softmax":
            return "a softmax output cannot fit continuous targets"
        return None
    n = subject.n_classes
    if subject.task == "binary":
        if loss in CATEGORICAL_LOSSES and units != 2:
            return (f"{loss} normalizes the outputs by their sum: over {units} unit(s) it is "
                    f"constant for 2 classes")
        if units not in (1, 2):
            return f"2 classes need 1 output unit (or 2, one-hot); the model has {units}"
        if head == "softmax" and units == 1:
            return "a softmax over 1 unit always outputs 1.0"
    elif units != n:
        return f"{n} classes need {n} output units; the model has {units}"
    if t.from_logits:
        if head in ("sigmoid", "softmax"):
            return f"from_logits=True but the output already applies {head}"
        return None
    if loss in CATEGORICAL_LOSSES and head not in POSITIVE_HEADS:
        return (f"{loss} divides the outputs by their sum, but a {head} output can be zero "
                "or negative (and from_logits is off)")
    if loss == "binary_crossentropy" and head not in UNIT_INTERVAL_HEADS:
        return (f"{loss} clips the outputs to [0, 1], but a {head} output leaves that range "
                "(and from_logits is off)")
    return None



def _loss_mismatch(ev: Evidence, _: None) -> Support | None:
    # wrong labels (bad_data) explain a loss that only seems not to fit
    if label_problem(ev) or ev(Config.LOSS_FITS_LABELS) != 0:
        return None
    detail = ev.details("config")
    return Support(FULL, dict(problem=detail.get("loss_problem"), loss=detail.get("loss"),
                              output_activation=detail.get("output_activation"),
                              output_units=ev(Config.OUTPUT_UNITS)))


def _fit_loss(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    if head_problem(ctx.subject) is None:
        return []
    loss, _, activation = fitting_loss(ctx.subject.task)
    # the control is the baseline: the same network and data with the own head and loss
    return [cf.plan(change=f"{ctx.subject.training.loss} -> {loss} with a {activation} head",
                    control="baseline", suspect=True, fit_loss=True)]


FIT_LOSS = Counterfactual("fit_loss", "the loss (and head) that fits the labels",
                          Code.LOSS_MISMATCH, _fit_loss)

LOSS_MISMATCH = Fault(
    Code.LOSS_MISMATCH,
    "The loss, the output activation/units and the labels do not fit each other.",
    "Use the loss that fits the labels: MSE for regression, binary cross-entropy with one "
    "sigmoid unit for two classes, (sparse) categorical cross-entropy with a softmax over "
    "one unit per class for more.",
    probe="config", rule=_loss_mismatch, counterfactuals=(FIT_LOSS,), definitive=True)


# ---------------------------------------------------------------- the learning rate


@dataclass(frozen=True)
class RateLimits:
    decade: float = 10.0  # a learning rate this far from its family's typical one...
    far_decades: float = 1.5  # ...is suspect; this many such factors away, strongly


def _rate_evidence(ev: Evidence) -> dict[str, float]:
    return dict(learning_rate=ev(Config.LEARNING_RATE),
                log10_vs_typical=ev(Config.LR_LOG10_VS_TYPICAL))


def _lr_too_low(ev: Evidence, lim: RateLimits) -> Support | None:
    lr_log, decade = ev(Config.LR_LOG10_VS_TYPICAL), math.log10(lim.decade)
    if lr_log <= -decade + 1e-9:
        far = lr_log <= -lim.far_decades * decade
        return Support(FULL if far else PARTIAL, _rate_evidence(ev))
    return None


def _lr_too_high(ev: Evidence, lim: RateLimits) -> Support | None:
    lr_log, decade = ev(Config.LR_LOG10_VS_TYPICAL), math.log10(lim.decade)
    if lr_log >= decade - 1e-9:
        far = lr_log >= lim.far_decades * decade or ev(Gradients.NONFINITE_WEIGHTS) > 0
        return Support(FULL if far else PARTIAL, _rate_evidence(ev))
    return None


def lr_ladder(optimizer: str, lr: float) -> list[float]:
    """Two learning rates to try: toward the family's typical rate, or one decade each way."""
    typical = typical_lr(optimizer)
    if lr <= typical / 10:
        return [typical, typical * 10]
    if lr >= typical * 10:
        return [typical, typical / 10]
    return [lr * 10, lr / 10]


#: where the model's own rate is already typical for its optimizer, another rate that
#: restores it only compensates for what the network's own architecture does: its activations
#: or initialization, when their change restores it too, are the cause
ARCHITECTURE_FAULTS = (Code.SATURATED_ACTIVATIONS, Code.VANISHING_GRADIENT,
                       Code.EXPLODING_GRADIENT, Code.DEAD_RELU)


def rate_is_typical(optimizer: str, lr: float) -> bool:
    """Within a decade of the optimizer family's typical rate."""
    return 1 / 10 < lr / typical_lr(optimizer) < 10


def rate_rung(own_lr: float, lr: float, suspect: bool = False,
              own_typical: bool = False) -> Plan:
    """The model's own optimizer at rate `lr`: up tests `lr_too_low`, down `lr_too_high`.
    Away from an `own_typical` rate, it only works around an architectural cause."""
    ratio = lr / own_lr
    cf = RATE_UP if ratio > 1 else RATE_DOWN
    plan = cf.plan(f"lr_{'up' if ratio > 1 else 'down'}_x{ratio:.3g}",
                   f"learning rate {own_lr:.3g} -> {lr:.3g}", suspect=suspect,
                   learning_rate=lr, rate_rung="up" if ratio > 1 else "down")
    return replace(plan, works_around=ARCHITECTURE_FAULTS) if own_typical else plan


def _rungs(ctx: PlanContext, up: bool) -> list[Plan]:
    t = ctx.subject.training
    typical = typical_lr(t.optimizer)
    own_typical = rate_is_typical(t.optimizer, t.learning_rate)
    return [rate_rung(t.learning_rate, lr, suspect=not own_typical and lr == typical,
                      own_typical=own_typical)
            for lr in lr_ladder(t.optimizer, t.learning_rate) if (lr > t.learning_rate) == up]


RATE_UP = Counterfactual("lr_up", "the own optimizer at a higher learning rate",
                         Code.LR_TOO_LOW, lambda ctx, _: _rungs(ctx, up=True),
                         also_fixes=(Code.UNDERTRAINED,))
RATE_DOWN = Counterfactual("lr_down", "the own optimizer at a lower learning rate",
                           Code.LR_TOO_HIGH, lambda ctx, _: _rungs(ctx, up=False),
                           also_fixes=(Code.EXPLODING_GRADIENT, Code.DEAD_RELU))

LR_TOO_HIGH = Fault(
    Code.LR_TOO_HIGH,
    "The learning rate is so large that training diverges or collapses.",
    "Lower the learning rate (try x0.1 to x0.01); add gradient clipping if it still spikes.",
    probe="config", rule=_lr_too_high, limits=RateLimits(), counterfactuals=(RATE_DOWN,))

LR_TOO_LOW = Fault(
    Code.LR_TOO_LOW,
    "The learning rate is so small that training barely moves the weights.",
    "Raise the learning rate (try x10 to x100) or train with Adam at its default 1e-3.",
    probe="config", rule=_lr_too_low, limits=RateLimits(), counterfactuals=(RATE_UP,))


# ---------------------------------------------------------------- optimizer_stalled


def _optimizer_stalled(ev: Evidence, _: None) -> Support | None:
    if ev(Config.OPTIMIZER_IS_SGD) == 1:
        return Support(PARTIAL, dict(optimizer="sgd", learning_rate=ev(Config.LEARNING_RATE)))
    return None


def _adam(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    """Adam also moves the rate: its control is the own optimizer at its typical rate (the
    baseline when the own rate is typical already)."""
    t = ctx.subject.training
    if t.optimizer in ADAM_LIKE_OPTIMIZERS:
        return []
    typical = typical_lr(t.optimizer)
    far = not 1 / 10 < t.learning_rate / typical < 10
    same = ctx.settings.same_rate_factor
    out: list[Plan] = []
    control = "baseline"
    if not 1 / same <= t.learning_rate / typical <= same:
        at_typical = [p for p in ctx.planned if p.learning_rate == typical]
        if not at_typical:
            at_typical = [replace(rate_rung(t.learning_rate, typical, far), name="lr_typical")]
            out += at_typical
        control = at_typical[0].name
    return [*out, cf.plan(change=f"{t.optimizer} -> Adam(1e-3)", control=control,
                          optimizer="adam", learning_rate=1e-3)]


ADAM = Counterfactual("adam", "Adam(1e-3) instead of the own optimizer",
                      Code.OPTIMIZER_STALLED, _adam,
                      also_fixes=(Code.VANISHING_GRADIENT, Code.SATURATED_ACTIVATIONS))

OPTIMIZER_STALLED = Fault(
    Code.OPTIMIZER_STALLED,
    "The optimizer stalls where Adam converges: plain SGD, or an optimizer whose steps only "
    "shrink (Adagrad, Adadelta, FTRL), even at its own usual rate.",
    "Train with Adam (lr 1e-3), or add momentum to SGD.",
    probe="config", rule=_optimizer_stalled, counterfactuals=(ADAM,))


# ---------------------------------------------------------------- undertrained


@dataclass(frozen=True)
class LengthLimits:
    few_epochs: float = 5  # a model trained this many epochs or fewer is suspect


def _undertrained(ev: Evidence, lim: LengthLimits) -> Support | None:
    epochs = ev(Config.TRAIN_EPOCHS)
    if math.isfinite(epochs) and epochs <= lim.few_epochs:
        return Support(FULL, dict(train_epochs=epochs))
    return None


def _train_longer(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    """A default-length training against a short original (suspect when far shorter)."""
    length = ctx.length
    if length is None or length.own_steps is None or length.longer_epochs <= length.epochs:
        return []
    return [cf.plan(change=f"{length.epochs} -> {length.longer_epochs} epochs",
                    suspect=length.longer_epochs >= ctx.settings.longer_factor * length.epochs,
                    epochs=length.longer_epochs)]


TRAIN_LONGER = Counterfactual("train_longer", "a default-length training", Code.UNDERTRAINED,
                              _train_longer, after_length=True)

UNDERTRAINED = Fault(
    Code.UNDERTRAINED,
    "Training stopped long before the model converged.",
    "Train for more epochs (watch the validation loss) or with a larger learning rate.",
    probe="config", rule=_undertrained, limits=LengthLimits(), counterfactuals=(TRAIN_LONGER,))
