"""The `activations` probe: one forward pass; dead ReLUs and saturated sigmoid/tanh per layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.evidence import keys
from audit.evidence.results import ProbeResult
from audit.models.vocab import RELU_LIKE, SATURATING, activation_name, is_recurrent
from audit.probes.base import ProbeSettings, sample_rows
from audit.probes.tfutil import to_tensors
from audit.subject import Subject
from audit.subject.inputs import call_inputs, finite_rows


class ActivationSettings(ProbeSettings):
    max_rows: int = 512
    #: a unit is saturated on a row when its activation's derivative is below this share of
    #: the derivative's peak (sigmoid: |z| > ~4.4; tanh: |z| > ~2.2)
    saturation_derivative: float = 0.05
    #: a unit is saturated when it is saturated on at least this share of rows
    saturated_rows: float = 0.9


#: each saturating activation's derivative from its output, as a share of its peak derivative
DERIVATIVE_RATIO = {
    "sigmoid": lambda out: out * (1 - out) / 0.25,
    "tanh": lambda out: 1 - out**2,
    "softsign": lambda out: (1 - np.abs(out)) ** 2,  # x / (1 + |x|)
    "hard_sigmoid": lambda out: ((out > 0) & (out < 1)).astype(np.float32),
}


def _derivative_ratio(activation: str, out: np.ndarray) -> np.ndarray:
    """The activation's derivative at each output, as a share of its peak derivative."""
    return DERIVATIVE_RATIO[activation](out)


def hidden_layers(model: Any) -> list[tuple[Any, str]]:
    """Hidden layers whose output is their activation's, ReLU-like or saturating: Dense, conv
    and Activation layers (recurrent cells gate their activations, so their output says
    nothing of one; the output layer is excluded)."""
    layers = []
    for layer in model.layers[:-1]:
        if is_recurrent(layer):
            continue
        name = activation_name(layer)
        if name in RELU_LIKE | SATURATING:
            layers.append((layer, name))
    return layers


def run(subject: Subject, settings: ActivationSettings) -> ProbeResult:
    import keras

    layers = hidden_layers(subject.model)
    if not layers:
        return ProbeResult(probe="activations", metrics={"hidden_layers": 0.0})
    mask = finite_rows(subject.inputs)
    idx = np.flatnonzero(mask)[sample_rows(int(mask.sum()), settings.max_rows, settings.seed)]
    tap = keras.Model(call_inputs(subject.model), [layer.output for layer, _ in layers])
    outputs = tap(to_tensors(subject.inputs.take(idx).feed()), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    metrics: dict[str, float] = {"hidden_layers": float(len(layers))}
    dead, saturated, abs_means = [], [], []
    for (layer, act), out in zip(layers, outputs, strict=True):
        out = np.asarray(out, dtype=np.float64)
        # a conv layer's unit is a channel, seen at every position of every row
        units = out.reshape(-1, out.shape[-1]) if out.ndim > 2 else out.reshape(len(idx), -1)
        abs_means.append(float(np.mean(np.abs(units))))
        if act in RELU_LIKE:
            frac = float(np.mean(np.all(units <= 0, axis=0)))
            metrics[keys.layer_metric(keys.DEAD_FRACTION, layer.name)] = frac
            dead.append(frac)
        else:
            flat = _derivative_ratio(act, units) < settings.saturation_derivative
            frac = float(np.mean(np.mean(flat, axis=0) >= settings.saturated_rows))
            metrics[keys.layer_metric(keys.SATURATED_FRACTION, layer.name)] = frac
            saturated.append(frac)
    metrics["relu_layers"] = float(len(dead))
    metrics["saturating_layers"] = float(len(saturated))
    metrics["dead_fraction_max"] = max(dead, default=0.0)
    metrics["dead_fraction_mean"] = float(np.mean(dead)) if dead else 0.0
    metrics["saturated_fraction_max"] = max(saturated, default=0.0)
    metrics["saturated_fraction_mean"] = float(np.mean(saturated)) if saturated else 0.0
    metrics["hidden_abs_mean_max"] = max(abs_means)
    details = {keys.LAYERS: [layer.name for layer, _ in layers],  # in model order, for charts
               "activations": [act for _, act in layers]}
    return ProbeResult(probe="activations", metrics=metrics, details=details)
