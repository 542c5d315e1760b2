"""The `sensitivity` probe: does the output move when the input moves?

One batched forward pass over real inputs, Gaussian perturbations at several scales (relative
to each feature's std), inputs swapped between rows, and one feature at a time.
"""

from __future__ import annotations

import numpy as np

from audit.probes import outcomes
from audit.probes.base import ProbeSettings, finite_rows, sample_rows
from audit.probes.tfutil import predict, subject_head
from audit.results import ProbeResult
from audit.subject import Subject


class SensitivitySettings(ProbeSettings):
    max_rows: int = 512  # rows of real data probed
    scales: tuple[float, ...] = (0.01, 0.1, 1.0)  # noise std as a multiple of each feature's std
    max_feature_rows: int = 128  # rows used for the per-feature sweep
    max_features: int = 64  # features swept one at a time (the rest are skipped)


def perturbation_batch(
    x: np.ndarray, std: np.ndarray, settings: SensitivitySettings, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[str, slice]]]:
    """All perturbed inputs in one preallocated array, with the slice each perturbation holds."""
    n = len(x)
    rows = min(n, settings.max_feature_rows)
    flat = x.reshape(n, -1)
    swept = min(flat.shape[1], settings.max_features)
    names = ["original", *(f"noise_{s:g}" for s in settings.scales), "row_swap",
             *(f"feature_{j}" for j in range(swept))]
    sizes = [n] * (len(settings.scales) + 2) + [rows] * swept
    batch = np.empty((sum(sizes), flat.shape[1]), dtype=np.float32)
    k = len(settings.scales)
    batch[:n] = flat
    noise = rng.standard_normal((k, n, flat.shape[1]), dtype=np.float32)
    scales = np.asarray(settings.scales, dtype=np.float32).reshape(k, 1, 1)
    batch[n : (k + 1) * n] = (flat + noise * std.reshape(1, -1) * scales).reshape(k * n, -1)
    batch[(k + 1) * n : (k + 2) * n] = flat[rng.permutation(n)]
    sweep = np.broadcast_to(flat[:rows], (swept, rows, flat.shape[1])).copy()
    j = np.arange(swept)
    sweep[j, :, j] += std.reshape(-1)[:swept, None] * rng.standard_normal((swept, rows),
                                                                          dtype=np.float32)
    batch[(k + 2) * n :] = sweep.reshape(swept * rows, -1)
    bounds = np.cumsum([0, *sizes])
    slices = [(name, slice(int(a), int(b)))
              for name, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)]
    return batch.reshape((len(batch), *x.shape[1:])), slices


def probe_inputs(
    subject: Subject, settings: SensitivitySettings
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, slice]]]:
    """The labels of the probed rows, and the batch of every perturbed input with its slices
    (what `run` feeds the model; benchmarks reuse it so they time exactly the same inputs)."""
    mask = finite_rows(subject.x, subject.y)
    if mask.sum() < 2:
        raise ValueError("fewer than 2 rows with finite features and label")
    idx = np.flatnonzero(mask)[sample_rows(int(mask.sum()), settings.max_rows, settings.seed)]
    x = subject.x[idx]
    std = np.std(x, axis=0, keepdims=True)
    std = np.where(std > 0, std, np.maximum(np.abs(np.mean(x, axis=0, keepdims=True)), 1.0))
    rng = np.random.default_rng(settings.seed)
    batch, slices = perturbation_batch(x, std.astype(np.float32), settings, rng)
    return subject.y[idx], batch, slices


def run(subject: Subject, settings: SensitivitySettings) -> ProbeResult:
    y, batch, slices = probe_inputs(subject, settings)
    raw = predict(subject.model, batch)
    head = subject_head(subject)
    scores = raw if subject.task == "regression" else head.probabilities(raw)
    parts = {name: scores[s] for name, s in slices}
    base = parts["original"]
    scale = outcomes.label_spread(y, subject.task, subject.n_classes) or 1.0
    metrics: dict[str, float] = {
        "skill": outcomes.skill(y, raw[slices[0][1]], subject.task, subject.n_classes, head),
        "spread_ratio": outcomes.spread_ratio(y, raw[slices[0][1]], subject.task,
                                              subject.n_classes, head),
        "nan_output_fraction": float(np.mean(~np.isfinite(base).all(axis=1))),
        "rows": float(len(y)),
    }
    if subject.task != "regression":
        classes = outcomes.predicted_classes(base, subject.n_classes)
        metrics["distinct_predicted_classes"] = float(len(np.unique(classes)))
        metrics["majority_prediction_fraction"] = float(np.bincount(classes).max() / len(classes))
    for name, _ in slices[1:]:
        if name.startswith("feature_"):
            continue
        moved = parts[name]
        n = len(moved)
        metrics[f"response_{name}"] = float(np.mean(np.abs(moved - base[:n])) / scale)
    feature_response = [
        float(np.mean(np.abs(parts[name] - base[: len(parts[name])])) / scale)
        for name, _ in slices
        if name.startswith("feature_")
    ]
    details: dict[str, object] = {}
    if feature_response:
        responses = np.array(feature_response)
        top = float(responses.max())
        metrics["feature_response_max"] = top
        inert = float(np.mean(responses < 0.01 * top)) if top > 0 else 1.0
        metrics["inert_feature_fraction"] = inert
        order = np.argsort(-responses)[:5]
        names = subject.feature_names
        details["most_influential_features"] = [
            names[i] if i < len(names) and len(names) == responses.size else f"input[{i}]"
            for i in order
        ]
    return ProbeResult(probe="sensitivity", metrics=metrics, details=details)
