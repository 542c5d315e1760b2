"""The `sensitivity` probe: does the output move when the input moves?

One batched forward pass over real inputs and their perturbations, each kind of input moved in
its own way:
- numeric inputs get Gaussian noise at several scales of each column's std;
- images and other tensors get noise at the same scales of their spread, and occluded patches;
- categorical inputs are resampled from the values seen, with the scale as the share of rows;
- token sequences get that share of their tokens replaced by tokens seen elsewhere.
Then whole rows swapped, and one feature at a time (a numeric column or a whole named input,
never a pixel or a token position).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.evidence import keys
from audit.evidence.results import ProbeResult
from audit.probes import outcomes
from audit.probes.base import ProbeSettings, sample_rows
from audit.probes.tfutil import predict, subject_head
from audit.subject import Subject
from audit.subject.inputs import InputArray, Inputs, finite_rows


class SensitivitySettings(ProbeSettings):
    max_rows: int = 512  # rows of real data probed
    scales: tuple[float, ...] = (0.01, 0.1, 1.0)  # noise std as a multiple of each feature's std
    max_feature_rows: int = 128  # rows used for the per-feature sweep
    max_features: int = 64  # features swept one at a time (the rest are skipped)
    token_fraction: float = 0.5  # share of a sequence's tokens replaced in the feature sweep
    occluded_share: float = 0.5  # side of an occluded patch, as a share of each spatial axis


@dataclass(frozen=True)
class _Spread:
    """How one input varies over the probed rows: what perturbations are scaled by or drawn
    from."""

    std: np.ndarray | float  # numeric: per column; tensor: one number
    pool: np.ndarray  # categorical: values seen; tokens: non-padding ids seen
    mean: float = 0.0  # tensor: the fill of an occluded patch


def _spread(array: InputArray) -> _Spread:
    values = array.values
    if array.kind == "numeric":
        flat = values.reshape(len(values), -1)
        std = np.std(flat, axis=0)
        std = np.where(std > 0, std, np.maximum(np.abs(np.mean(flat, axis=0)), 1.0))
        return _Spread(std.astype(np.float32).reshape(values.shape[1:]), np.empty(0))
    if array.kind == "tensor":
        std = float(np.std(values)) or max(abs(float(np.mean(values))), 1.0)
        return _Spread(std, np.empty(0), float(np.mean(values)))
    if array.kind == "categorical":
        return _Spread(0.0, np.unique(values.reshape(-1)))
    tokens = np.unique(values)
    return _Spread(0.0, tokens[tokens != 0] if np.any(tokens != 0) else tokens)


def perturb(array: InputArray, values: np.ndarray, spread: _Spread, scale: float,
            rng: np.random.Generator, column: int | None = None) -> np.ndarray:
    """`values` of `array` moved by `scale` (see the module docstring); a numeric `column`
    alone when given."""
    if array.kind in ("numeric", "tensor"):
        std = spread.std if column is None else np.asarray(spread.std).reshape(-1)[column]
        if column is None:
            noise = rng.standard_normal(values.shape, dtype=np.float32)
            return (values + noise * np.float32(scale) * std).astype(values.dtype)
        moved = values.copy()
        moved[:, column] += (rng.standard_normal(len(values), dtype=np.float32)
                             * np.float32(scale * std))
        return moved
    share = min(float(scale), 1.0)
    moved = values.copy()
    if array.kind == "categorical":
        hit = rng.random(len(values)) < share
        moved[hit] = rng.choice(spread.pool, size=(int(hit.sum()), *values.shape[1:]))
        return moved
    hit = (rng.random(values.shape) < share) & (values != 0)
    moved[hit] = rng.choice(spread.pool, size=int(hit.sum())).astype(values.dtype)
    return moved


def occlude(values: np.ndarray, fill: float, share: float,
            rng: np.random.Generator) -> np.ndarray:
    """A patch of each row (a `share` of each of the first two per-row axes, or of the first
    one for sequences) set to `fill`, at a random place per row."""
    moved = values.copy()
    axes = values.shape[1:3] if values.ndim >= 4 else values.shape[1:2]
    sizes = [max(1, round(a * share)) for a in axes]
    for i in range(len(values)):
        starts = [int(rng.integers(0, a - s + 1)) for a, s in zip(axes, sizes, strict=True)]
        window = tuple(slice(b, b + s) for b, s in zip(starts, sizes, strict=True))
        moved[(i, *window)] = fill
    return moved


def perturbation_batch(
    x: Inputs, settings: SensitivitySettings, rng: np.random.Generator
) -> tuple[Inputs, list[tuple[str, slice]]]:
    """All perturbed inputs as one `Inputs`, with the slice of rows each perturbation holds."""
    n = len(x)
    spreads = {a.name: _spread(a) for a in x.arrays}
    segments: list[tuple[str, Inputs]] = [("original", x)]
    for s in settings.scales:
        segments.append((keys.noise_perturbation(s), x.with_values({
            a.name: perturb(a, a.values, spreads[a.name], s, rng) for a in x.arrays})))
    segments.append(("row_swap", x.take(rng.permutation(n))))
    images = [a for a in x.arrays if a.kind == "tensor" and a.values.ndim >= 3]
    if images:
        segments.append(("occlusion", x.with_values({
            a.name: occlude(a.values, spreads[a.name].mean, settings.occluded_share, rng)
            for a in images})))
    head = x.take(slice(0, min(n, settings.max_feature_rows)))
    for j, feature in enumerate(x.features[: settings.max_features]):
        array = head[feature.input]
        scale = settings.token_fraction if array.kind == "tokens" else 1.0
        moved = perturb(array, array.values, spreads[feature.input], scale, rng, feature.column)
        segments.append((f"feature_{j}", head.with_values({feature.input: moved})))
    bounds = np.cumsum([0, *(len(part) for _, part in segments)])
    slices = [(name, slice(int(a), int(b)))
              for (name, _), a, b in zip(segments, bounds[:-1], bounds[1:], strict=True)]
    return Inputs.concat([part for _, part in segments]), slices


def probe_inputs(
    subject: Subject, settings: SensitivitySettings
) -> tuple[np.ndarray, Inputs, list[tuple[str, slice]]]:
    """The labels of the probed rows, and the batch of every perturbed input with its slices
    (what `run` feeds the model; benchmarks reuse it so they time exactly the same inputs)."""
    mask = finite_rows(subject.inputs, subject.y)
    if mask.sum() < 2:
        raise ValueError("fewer than 2 rows with finite features and label")
    idx = np.flatnonzero(mask)[sample_rows(int(mask.sum()), settings.max_rows, settings.seed)]
    rng = np.random.default_rng(settings.seed)
    batch, slices = perturbation_batch(subject.inputs.take(idx), settings, rng)
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
        metrics[keys.response(name)] = float(np.mean(np.abs(moved - base[: len(moved)])) / scale)
    features = subject.inputs.features
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
        metrics["features_swept"] = float(len(responses))
        inert = float(np.mean(responses < 0.01 * top)) if top > 0 else 1.0
        metrics["inert_feature_fraction"] = inert
        order = np.argsort(-responses)[:5]
        details["most_influential_features"] = [features[i].name for i in order]
        details["feature_response"] = {features[i].name: round(float(responses[i]), 6)
                                       for i in range(len(responses))}
    return ProbeResult(probe="sensitivity", metrics=metrics, details=details)
