"""The `data` probe: one pass over the dataset for NaN/inf, scale, constant columns, labels, and
per kind of input: categories the model's lookup does not know, token ids beyond an
`Embedding`, image value ranges.

Scale statistics cover the numeric columns and image/tensor inputs the model does not scale
itself (an input read by `Normalization`, `Rescaling` or a leading `BatchNormalization` is
already scaled, whatever its raw values).
"""

from __future__ import annotations

import math

import numpy as np

from audit.inputs import model_inputs
from audit.probes.base import ProbeSettings
from audit.probes.keys import Data
from audit.results import ProbeResult
from audit.subject import Subject


class DataSettings(ProbeSettings):
    constant_std: float = 1e-8  # a column whose std is below this is constant
    few_label_values: int = 50  # labels with at most this many distinct values may be ids
    max_label_scale: int = 1000  # labels that are ids / k are looked for up to this k
    near_integer: float = 0.02  # a label this close to an integer (and not one) is nearly one


def _scale_stats(subject: Subject,
                 settings: DataSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Mean, std and |max| of the numbers whose scale matters, with their names: each numeric
    column the model does not scale itself, and each such image/tensor input as one whole (a
    constant border pixel is no constant column)."""
    n = len(subject.inputs)
    means, stds, maxes, names = [], [], [], []

    def add(values: np.ndarray, name: str | list[str]) -> None:
        clean = np.where(np.isfinite(values), values, np.nan)
        with np.errstate(all="ignore"):
            means.append(np.atleast_1d(np.nan_to_num(np.nanmean(clean, axis=0), nan=0.0)))
            stds.append(np.atleast_1d(np.nan_to_num(np.nanstd(clean, axis=0), nan=0.0)))
            maxes.append(np.atleast_1d(np.nan_to_num(np.nanmax(np.abs(clean), axis=0), nan=0.0)))
        names.extend(name if isinstance(name, list) else [name])

    for array in subject.inputs.arrays:
        if not array.is_float or array.normalized is not False:
            continue
        if array.kind == "numeric":
            block = array.values.reshape(n, -1).astype(np.float64)
            add(block, list(array.columns) if len(array.columns) == block.shape[1]
                else [f"{array.name}[{j}]" for j in range(block.shape[1])])
        else:
            add(array.values.reshape(-1).astype(np.float64), array.name)
    if not names:
        empty = np.zeros(0)
        return empty, empty, empty, []
    return np.concatenate(means), np.concatenate(stds), np.concatenate(maxes), names


def _float_cells(subject: Subject) -> np.ndarray:
    n = len(subject.inputs)
    cells = [a.values.reshape(n, -1) for a in subject.inputs.arrays if a.is_float]
    return np.concatenate(cells, axis=1).astype(np.float64) if cells else np.zeros((n, 0))


def _per_kind(subject: Subject, metrics: dict[str, float], details: dict[str, object]) -> None:
    """Categorical cardinality and unknown share, token ids beyond the embedding, image range."""
    declared = {d.name: d for d in model_inputs(subject.model)}
    unknown_max, out_of_range_max = 0.0, 0.0
    for array in subject.inputs.arrays:
        d = declared.get(array.name)
        values = array.values.reshape(-1)
        if array.kind == "categorical":
            metrics[f"cardinality.{array.name}"] = float(len(np.unique(values)))
            vocab = d.vocabulary() if d is not None else None
            if vocab is not None:
                known = np.isin(values.astype(str) if values.dtype == object else values,
                                np.array(sorted(vocab, key=str), dtype=values.dtype))
                share = float(1 - known.mean())
                metrics[f"unknown_category_fraction.{array.name}"] = share
                unknown_max = max(unknown_max, share)
        elif array.kind == "tokens":
            size = d.embedding_size() if d is not None else None
            metrics[f"token_max.{array.name}"] = float(values.max())
            if size is not None:
                share = float(np.mean((values < 0) | (values >= size)))
                metrics[f"token_out_of_range_fraction.{array.name}"] = share
                out_of_range_max = max(out_of_range_max, share)
        elif array.kind == "tensor":
            finite = values[np.isfinite(values)]
            if finite.size:
                metrics[f"value_min.{array.name}"] = float(finite.min())
                metrics[f"value_max.{array.name}"] = float(finite.max())
    metrics["unknown_category_fraction_max"] = unknown_max
    metrics["token_out_of_range_fraction_max"] = out_of_range_max
    details["input_kinds"] = {a.name: a.kind for a in subject.inputs.arrays}


def run(subject: Subject, settings: DataSettings) -> ProbeResult:
    cells = _float_cells(subject)
    y = subject.y
    bad_rows = ~subject.inputs.finite_rows()
    if y.dtype.kind == "f":
        bad_rows |= ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
    mean, std, abs_max, names = _scale_stats(subject, settings)
    constant = std < settings.constant_std
    live_std = std[~constant]
    metrics: dict[str, float] = {
        Data.ROWS.metric: float(len(y)),
        "rows_in_file": float(subject.rows_in_file or len(y)),
        Data.FEATURES.metric: float(len(subject.inputs.features)),
        "inputs": float(len(subject.inputs.arrays)),
        # a SavedModel may scale its inputs inside, unseen: their scale is not judged
        "inputs_of_unseen_scaling": float(sum(a.normalized is None and a.is_float
                                              for a in subject.inputs.arrays)),
        Data.NAN_CELLS.metric: float(np.isnan(cells).sum()),
        Data.INF_CELLS.metric: float(np.isinf(cells).sum()),
        Data.MALFORMED_CELLS.metric: float(subject.malformed_cells),
        Data.BAD_ROWS.metric: float(bad_rows.sum()),
        Data.BAD_ROW_FRACTION.metric: float(bad_rows.mean()),
        Data.CONSTANT_COLUMNS.metric: float(constant.sum()),
        Data.FEATURE_ABS_MAX.metric: float(abs_max.max()) if abs_max.size else 0.0,
        "feature_std_max": float(live_std.max()) if live_std.size else 0.0,
        "feature_std_min": float(live_std.min()) if live_std.size else 0.0,
        Data.FEATURE_STD_RATIO.metric: (float(live_std.max() / live_std.min())
                                        if live_std.size else 1.0),
        "feature_mean_abs_max": float(np.abs(mean).max()) if mean.size else 0.0,
        # how far the features are from standardized: 0 when each has mean 0 and std 1
        Data.FEATURE_SCALE_LOG10.metric: (
            float(np.log10(max(np.sqrt(np.mean(mean**2 + std**2)), 1e-12))) if mean.size else 0.0),
    }
    details: dict[str, object] = {
        "constant_columns": sorted({names[i] for i in np.flatnonzero(constant)})[:20],
    }
    _per_kind(subject, metrics, details)
    metrics.update(label_checks(subject.y, subject.task, settings))
    if subject.task == "regression":
        finite_y = y[np.isfinite(y)]
        metrics["label_nan"] = float(subject.label_nan_rows)
        metrics[Data.LABEL_MEAN.metric] = float(finite_y.mean()) if finite_y.size else 0.0
        metrics[Data.LABEL_STD.metric] = float(finite_y.std()) if finite_y.size else 0.0
        metrics["label_abs_max"] = float(np.abs(finite_y).max()) if finite_y.size else 0.0
    else:
        counts = np.bincount(y.astype(np.int64), minlength=subject.n_classes)
        present = counts[counts > 0]
        freq = counts / counts.sum()
        metrics["classes"] = float(subject.n_classes)
        metrics["classes_present"] = float(len(present))
        metrics[Data.MINORITY_FRACTION.metric] = float(freq[counts > 0].min())
        metrics["majority_fraction"] = float(freq.max())
        metrics[Data.IMBALANCE_RATIO.metric] = float(present.min() / present.max())
        details["class_counts"] = {str(i): int(c) for i, c in enumerate(counts)}
    return ProbeResult(probe="data", metrics=metrics, details=details)


def _fraction_scale(values: np.ndarray, settings: DataSettings) -> float:
    """The smallest k for which every distinct label times k is a small class id (labels that
    are class ids divided by a scale), NaN when the labels are integers already or no k fits.

    The ids must be compact (0 to `few_label_values`): ids / 255 are {0, 1, ..., 9} / 255,
    while integers with round-off ({0.999, 2.001}) only fit k = 1000 as ids in the thousands.
    """
    if np.allclose(values, np.round(values)):
        return float("nan")
    for k in range(2, settings.max_label_scale + 1):
        scaled = values * k
        # ids stored as float32 are off by ~1e-6; a neighbouring k is off by 1/k of an id
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-3):
            ids = np.round(scaled)
            compact = ids.min() >= 0 and ids.max() < settings.few_label_values
            return float(k) if compact else float("nan")
    return float("nan")


def label_checks(y: np.ndarray, task: str, settings: DataSettings) -> dict[str, float]:
    """What the labels look like, for the rules that compare them with what the loss expects:
    how many distinct values, whether they are class ids divided by a scale, nearly integers,
    one-hot rows that do not sum to 1, or (for regression) a few contiguous integers."""
    flat = y.reshape(len(y), -1).astype(np.float64) if y.dtype != object else np.zeros((0, 1))
    finite = flat[np.all(np.isfinite(flat), axis=1)]
    rows = {tuple(r) for r in finite[:10_000]}
    out = {Data.LABEL_DISTINCT.metric: float(len(rows)),
           Data.LABEL_FRACTION_SCALE.metric: float("nan"),
           Data.LABEL_NEAR_INTEGER.metric: 0.0,
           Data.LABEL_ONE_HOT_BAD_ROWS.metric: 0.0,
           Data.LABEL_CLASS_IDS.metric: 0.0}
    if finite.size == 0:
        return out
    if finite.shape[1] > 1:  # a label per class: one-hot rows must sum to 1
        if np.all(np.isin(finite, (0.0, 1.0))):
            out[Data.LABEL_ONE_HOT_BAD_ROWS.metric] = float(np.sum(finite.sum(axis=1) != 1))
        return out
    values = np.unique(finite[:, 0])
    off = np.abs(finite[:, 0] - np.round(finite[:, 0]))
    nearly = (off > 0) & (off <= settings.near_integer)
    if 2 <= len(values) <= settings.few_label_values:
        out[Data.LABEL_FRACTION_SCALE.metric] = _fraction_scale(values, settings)
    # ids over a large scale (ids / 255 all lie within 0.04 of 0) are no round-off: a scale
    # that gives compact ids explains them, and rounding would merge every class into one
    scaled_ids = math.isfinite(out[Data.LABEL_FRACTION_SCALE.metric])
    if len(np.unique(np.round(values))) <= settings.few_label_values and not scaled_ids:
        out[Data.LABEL_NEAR_INTEGER.metric] = float(nearly.mean()) if np.all(
            off <= settings.near_integer) else 0.0
    integral = np.all(off == 0)  # exact: class ids are stored as exact integers
    if (task == "regression" and integral and 3 <= len(values) <= settings.few_label_values
            and values[0] == 0 and np.array_equal(values, np.arange(len(values)))):
        out[Data.LABEL_CLASS_IDS.metric] = 1.0
    return out
