"""The `config` probe: costs nothing; checks loss vs head vs labels and the optimizer settings."""

from __future__ import annotations

import math

from audit.keras_vocab import (
    BINARY_LOSSES,
    CATEGORICAL_LOSSES,
    REGRESSION_LOSSES,
    RELU_LIKE,
    SATURATING,
    activation_name,
    regularization,
    typical_lr,
    weighted_layers,
)
from audit.probes.base import ProbeSettings
from audit.probes.keys import Config
from audit.results import ProbeResult
from audit.subject import Subject


class ConfigSettings(ProbeSettings):
    pass


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


def run(subject: Subject, settings: ConfigSettings) -> ProbeResult:
    t = subject.training
    layers = weighted_layers(subject.model)
    acts = [activation_name(layer) for layer in layers[:-1]]
    # a SavedModel keeps no loss and hides its head's activation: nothing to check
    problem = head_problem(subject) if subject.retrainable else None
    typical = typical_lr(t.optimizer)
    penalty, dropout = regularization(subject.model)
    metrics = {
        Config.OUTPUT_UNITS.metric: float(subject.n_outputs),
        Config.LOSS_FITS_LABELS.metric: ((0.0 if problem else 1.0) if subject.retrainable
                                         else float("nan")),
        Config.LOSS_IS_CLASSIFICATION.metric: float(t.loss in BINARY_LOSSES | CATEGORICAL_LOSSES),
        Config.LEARNING_RATE.metric: t.learning_rate,
        Config.LR_LOG10_VS_TYPICAL.metric: math.log10(t.learning_rate / typical),
        Config.OPTIMIZER_IS_SGD.metric: 1.0 if t.optimizer == "sgd" else 0.0,
        "weighted_layers": float(len(layers)),
        "saturating_hidden_layers": float(sum(a in SATURATING for a in acts)),
        "relu_hidden_layers": float(sum(a in RELU_LIKE for a in acts)),
        Config.TRAIN_EPOCHS.metric: float(t.epochs) if t.epochs else float("nan"),
        "batch_size": float(t.batch_size),
        "params": float(subject.model.count_params()),
        Config.WEIGHT_PENALTY.metric: penalty,
        Config.DROPOUT.metric: dropout,
    }
    details = {
        "task": subject.task,
        "loss": t.loss,
        "optimizer": t.optimizer,
        "output_activation": activation_name(subject.model.layers[-1]) or "linear",
        "hidden_activations": acts,
        "training_source": t.source,
        "loss_problem": problem,
    }
    return ProbeResult(probe="config", metrics=metrics, details=details)
