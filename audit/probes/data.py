"""The `data` probe: one pass over the dataset for NaN/inf, scale, constant columns, labels, and
per kind of input: categories the model's lookup does not know, token ids beyond an
`Embedding`, image value ranges.

Scale statistics cover the numeric columns and image/tensor inputs the model does not scale
itself (an input read by `Normalization`, `Rescaling` or a leading `BatchNormalization` is
already scaled, whatever its raw values).
"""

from __future__ import annotations

import numpy as np

from audit.evidence.keys import Data
from audit.evidence.results import ProbeResult
from audit.probes.base import ProbeSettings
from audit.subject import Subject
from audit.subject.inputs import model_inputs
from audit.subject.labels import label_checks


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
        # an estimate (TFRecord shards too big to count): the row says so; absent: a count
        **({"rows_in_file_estimated": 1.0} if subject.rows_in_file_estimated else {}),
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
