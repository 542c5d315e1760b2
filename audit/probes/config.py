"""The `config` probe: costs nothing; checks loss vs head vs labels and the optimizer settings."""

from __future__ import annotations

import math

from audit.evidence.keys import Config
from audit.evidence.results import ProbeResult
from audit.faults.training import head_problem
from audit.models.vocab import (
    BINARY_LOSSES,
    CATEGORICAL_LOSSES,
    RELU_LIKE,
    SATURATING,
    activation_name,
    regularization,
    typical_lr,
    weighted_layers,
)
from audit.probes.base import ProbeSettings
from audit.subject import Subject


class ConfigSettings(ProbeSettings):
    pass


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
