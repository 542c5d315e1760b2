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


def head_problem(subject: Subject) -> str | None:
    """Why the loss, output head and labels do not fit together, or None when they do."""
    t = subject.training
    model = subject.model
    units = subject.n_outputs
    head = activation_name(model.layers[-1]) if model.layers else None
    head = head or "linear"
    loss = t.loss
    probs = head in ("sigmoid", "softmax")
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
    if loss in REGRESSION_LOSSES and subject.task == "multiclass":
        return f"loss {loss} treats {n} class labels as numbers"
    if subject.task == "binary":
        if loss in CATEGORICAL_LOSSES and units != 2:
            return f"{loss} needs 2 output units for 2 classes; the model has {units}"
        if loss in BINARY_LOSSES | REGRESSION_LOSSES and units != 1:
            return f"{loss} on 2 classes needs 1 output unit; the model has {units}"
        if head == "softmax" and units == 1:
            return "a softmax over 1 unit always outputs 1.0"
    else:
        if loss in BINARY_LOSSES:
            return f"{loss} is for 2 classes but the labels have {n}"
        if units != n:
            return f"{n} classes need {n} output units; the model has {units}"
        if head == "sigmoid":
            return "sigmoid outputs do not form a distribution over classes; use softmax"
    if (loss in BINARY_LOSSES | CATEGORICAL_LOSSES) and not probs and not t.from_logits:
        return f"{loss} expects probabilities but the output is {head} (and from_logits is off)"
    if probs and t.from_logits:
        return f"from_logits=True but the output already applies {head}"
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
