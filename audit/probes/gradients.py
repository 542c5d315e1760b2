"""The `gradients` probe: one backward pass; per-layer gradient norms and NaN/inf weights."""

from __future__ import annotations

import numpy as np

from audit.evidence import keys
from audit.evidence.results import ProbeResult
from audit.models.vocab import weighted_layers
from audit.probes.base import ProbeSettings, sample_rows
from audit.probes.tfutil import encode_targets, make_loss, subject_head, to_tensors
from audit.subject import Subject
from audit.subject.inputs import finite_rows


class GradientSettings(ProbeSettings):
    max_rows: int = 256


def run(subject: Subject, settings: GradientSettings) -> ProbeResult:
    import tensorflow as tf

    model = subject.model
    weights = [np.asarray(w) for w in model.trainable_weights]
    bad_weights = int(sum(np.sum(~np.isfinite(w)) for w in weights))
    finite = [np.abs(w[np.isfinite(w)]) for w in weights]
    metrics: dict[str, float] = {
        "nonfinite_weights": float(bad_weights),
        "weight_abs_max": float(max((w.max() for w in finite if w.size), default=0.0)),
    }
    if not subject.retrainable:
        metrics["gradients_measured"] = 0.0
        return ProbeResult(probe="gradients", metrics=metrics,
                           details={"why": "SavedModel layers expose no trainable graph"})
    mask = finite_rows(subject.inputs, subject.y)
    idx = np.flatnonzero(mask)[sample_rows(int(mask.sum()), settings.max_rows, settings.seed)]
    t = subject.training
    head = subject_head(subject)
    y = encode_targets(subject.y[idx], subject.task, t.loss, head.units)
    loss_fn = make_loss(t.loss, t.from_logits)
    layers = weighted_layers(model)
    with tf.GradientTape() as tape:
        out = model(to_tensors(subject.inputs.take(idx).feed()), training=False)
        loss = loss_fn(tf.constant(y), out)
    kernels = [layer.trainable_weights[0] for layer in layers]
    grads = tape.gradient(loss, kernels)
    norms = []
    for layer, kernel, grad in zip(layers, kernels, grads, strict=True):
        # an Embedding's gradient is sparse (IndexedSlices): densify it
        g = (np.zeros(kernel.shape) if grad is None
             else np.asarray(tf.convert_to_tensor(grad), dtype=np.float64))
        w = np.asarray(kernel, dtype=np.float64)
        norm = float(np.linalg.norm(g))
        norms.append(norm)
        metrics[keys.layer_metric(keys.GRAD_NORM, layer.name)] = norm
        metrics[f"relative_grad.{layer.name}"] = norm / max(float(np.linalg.norm(w)), 1e-12)
    first, last = norms[0], norms[-1]
    metrics["gradients_measured"] = 1.0
    metrics["loss"] = float(loss)
    metrics["grad_norm_first"] = first
    metrics["grad_norm_last"] = last
    metrics["grad_ratio_first_last"] = first / last if last > 0 else float("nan")
    metrics["grad_norm_max"] = max(norms)
    metrics["zero_grad_layers"] = float(sum(n == 0 for n in norms))
    metrics["depth"] = float(len(layers))
    details = {keys.LAYERS: [layer.name for layer in layers]}  # in model order, for charts
    return ProbeResult(probe="gradients", metrics=metrics, details=details)
