"""Faults inside the network: exploding or vanishing gradients, dead or saturated units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.evidence.keys import Activations, Gradients
from audit.faults.codes import Code
from audit.faults.plan import Plan
from audit.faults.unit import FULL, PARTIAL, Counterfactual, Evidence, Fault, PlanContext, Support
from audit.models.vocab import (
    DEFAULT_KERNEL_INITS,
    activation_name,
    is_recurrent,
    nonsaturating_swap,
    weighted_layers,
)


@dataclass(frozen=True)
class GradientLimits:
    deep_net: float = 3  # gradient ratios are judged on networks with this many weighted layers
    vanishing_ratio: float = 1e-3  # first/last layer gradient norm ratio (AUTOTRAINER)
    vanishing_near: float = 10.0  # a ratio within this factor of its bar is a partial signal
    exploding_ratio: float = 70.0  # first/last layer gradient norm ratio (AUTOTRAINER)
    exploding_norm: float = 1e3  # a gradient norm this large is explosive on its own


@dataclass(frozen=True)
class UnitLimits:
    dead_relu: float = 0.7  # share of a layer's ReLUs that never fire (DeepDiagnosis: 70%)
    saturated: float = 0.5  # share of a layer's sigmoid/tanh units in their flat tails


def _exploding(ev: Evidence, lim: GradientLimits) -> Support | None:
    ratio, depth = ev(Gradients.RATIO_FIRST_LAST), ev(Gradients.DEPTH)
    grad_max, nonfinite = ev(Gradients.NORM_MAX), ev(Gradients.NONFINITE_WEIGHTS)
    if depth >= lim.deep_net and (ratio > lim.exploding_ratio or grad_max > lim.exploding_norm
                                  or nonfinite > 0):
        return Support(FULL, dict(grad_ratio_first_last=ratio, grad_norm_max=grad_max,
                                  nonfinite_weights=nonfinite, depth=depth))
    return None


def _vanishing(ev: Evidence, lim: GradientLimits) -> Support | None:
    ratio, depth = ev(Gradients.RATIO_FIRST_LAST), ev(Gradients.DEPTH)
    if depth < lim.deep_net:
        return None
    if ratio < lim.vanishing_ratio:
        return Support(FULL, dict(grad_ratio_first_last=ratio, depth=depth,
                                  grad_norm_first=ev(Gradients.NORM_FIRST)))
    if ratio < lim.vanishing_ratio * lim.vanishing_near:
        return Support(PARTIAL, dict(grad_ratio_first_last=ratio, depth=depth))
    return None


def _dead_relu(ev: Evidence, lim: UnitLimits) -> Support | None:
    dead = ev(Activations.DEAD_MAX)
    if dead >= lim.dead_relu:
        return Support(FULL, dict(dead_fraction_max=dead,
                                  dead_fraction_mean=ev(Activations.DEAD_MEAN)))
    return None


def _saturated(ev: Evidence, lim: UnitLimits) -> Support | None:
    saturated = ev(Activations.SATURATED_MAX)
    if saturated >= lim.saturated:
        return Support(FULL, dict(saturated_fraction_max=saturated,
                                  saturated_fraction_mean=ev(Activations.SATURATED_MEAN)))
    return None


# ---------------------------------------------------------------- counterfactuals


def _initializer_name(init: Any) -> str:
    return type(init).__name__.lower().replace("_", "")


def has_unusual_init(model: Any) -> bool:
    """True when some layer uses an initializer other than Keras' usual defaults."""
    for layer in weighted_layers(model):
        kernel = getattr(layer, "kernel_initializer", None)
        bias = getattr(layer, "bias_initializer", None)
        if kernel is not None and _initializer_name(kernel) not in DEFAULT_KERNEL_INITS:
            return True
        if bias is not None and _initializer_name(bias) not in {"zeros"}:
            return True
    return False


def _clip_gradients(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    t = ctx.subject.training
    if len(weighted_layers(ctx.subject.model)) >= 3 and not dict(t.optimizer_config).get(
            "clipnorm"):
        return [cf.plan(clipnorm=1.0)]
    return []


def _nonsaturating(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    swap = nonsaturating_swap(ctx.subject.model)
    return [cf.plan(architecture="nonsaturating", activations=swap)] if swap else []


def odd_activation(model: Any) -> tuple[str, str, str] | None:
    """The one hidden layer whose activation is out of line with every other hidden layer's
    (a softmax or sigmoid between ReLU layers, as a swapped activation leaves it), as (layer,
    its activation, the others'), or None. At least two others must agree; recurrent layers
    (gates by design) and the head are not counted."""
    hidden = [(layer.name, activation_name(layer))
              for layer in weighted_layers(model)[:-1] if not is_recurrent(layer)]
    hidden = [(name, act) for name, act in hidden if act is not None]
    kinds = {act for _, act in hidden}
    if len(hidden) < 3 or len(kinds) != 2:
        return None
    odd = [(name, act) for name, act in hidden
           if sum(a == act for _, a in hidden) == 1]
    if len(odd) != 1:
        return None
    name, act = odd[0]
    return name, act, next(a for _, a in hidden if a != act)


def _restore_activation(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    odd = odd_activation(ctx.subject.model)
    if odd is None:
        return []
    name, act, usual = odd
    return [cf.plan(change=f"layer {name}: {act} -> {usual}, as every other hidden layer",
                    suspect=True, architecture="restore_activation",
                    activations=((name, usual),))]


def _default_init(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    if not has_unusual_init(ctx.subject.model):
        return []
    return [cf.plan(suspect=True, architecture="default_init")]


CLIP_GRADIENTS = Counterfactual("clip_gradients", "gradients clipped to norm 1",
                                Code.EXPLODING_GRADIENT, _clip_gradients,
                                also_fixes=(Code.LR_TOO_HIGH,))
#: one layer's activation put back removes the cause; what else restored only compensated
#: for the units it killed or squashed (dead ReLUs downstream, a stalled optimizer, a rate)
RESTORE_ACTIVATION = Counterfactual(
    "restore_activation",
    "one hidden layer's activation, out of line with the others', set to theirs",
    Code.SATURATED_ACTIVATIONS, _restore_activation,
    outranks=(Code.DEAD_RELU, Code.VANISHING_GRADIENT, Code.EXPLODING_GRADIENT,
              Code.OPTIMIZER_STALLED, Code.LR_TOO_LOW, Code.LR_TOO_HIGH, Code.UNDERTRAINED))
#: AUTOTRAINER's `relu_1` (ReLU, He init, zero bias) for every other hidden activation Keras
#: ships, and its `leaky_3` for ReLU units; an activation that blows up (exponential) is
#: exploding gradients that clipping alone does not cure
NONSATURATING = Counterfactual(
    "nonsaturating",
    "hidden activations -> ReLU (He init, zero bias), ReLU -> LeakyReLU",
    Code.SATURATED_ACTIVATIONS, _nonsaturating,
    also_fixes=(Code.DEAD_RELU, Code.VANISHING_GRADIENT, Code.EXPLODING_GRADIENT))
#: tests no single fault: it speaks for the one it also fixes with the most static support
DEFAULT_INIT = Counterfactual("default_init", "Keras' default initializers (Glorot, zero bias)",
                              None, _default_init,
                              also_fixes=(Code.DEAD_RELU, Code.EXPLODING_GRADIENT,
                                          Code.SATURATED_ACTIVATIONS, Code.VANISHING_GRADIENT))

EXPLODING_GRADIENT = Fault(
    Code.EXPLODING_GRADIENT,
    "Gradients grow through the network until the weights blow up.",
    "Clip gradients (clipnorm=1.0), use a smaller initialization, lower the learning rate.",
    probe="gradients", rule=_exploding, limits=GradientLimits(),
    counterfactuals=(CLIP_GRADIENTS,))

DEAD_RELU = Fault(
    Code.DEAD_RELU,
    "Most ReLU units output zero for every input and never recover.",
    "Re-initialize (He init, zero bias), lower the learning rate, or use LeakyReLU/ELU.",
    probe="activations", rule=_dead_relu, limits=UnitLimits(), counterfactuals=(DEFAULT_INIT,))

SATURATED_ACTIVATIONS = Fault(
    Code.SATURATED_ACTIVATIONS,
    "A hidden activation keeps the network from learning: sigmoid/tanh units sit in their "
    "flat tails, a stack of linear units is a linear model, or one layer's activation, out "
    "of line with the others' (a softmax, sigmoid or exponential between ReLU layers), "
    "starves or kills the units after it, so gradients vanish.",
    "Give the layer out of line its neighbours' activation; otherwise use ReLU-family "
    "activations (He init) or scale the pre-activations (inputs, init, BatchNorm).",
    probe="activations", rule=_saturated, limits=UnitLimits(),
    counterfactuals=(RESTORE_ACTIVATION, NONSATURATING))

VANISHING_GRADIENT = Fault(
    Code.VANISHING_GRADIENT,
    "Gradients shrink through the depth of the network so early layers never learn.",
    "Use ReLU-family activations, residual connections or BatchNorm; make the net shallower.",
    probe="gradients", rule=_vanishing, limits=GradientLimits())
