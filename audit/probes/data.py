"""The `data` probe: one pass over the dataset for NaN/inf, scale, constant columns, labels."""

from __future__ import annotations

import numpy as np

from audit.probes.base import ProbeSettings
from audit.results import ProbeResult
from audit.subject import Subject


class DataSettings(ProbeSettings):
    constant_std: float = 1e-8  # a column whose std is below this is constant


def run(subject: Subject, settings: DataSettings) -> ProbeResult:
    x = subject.x.reshape(len(subject.x), -1).astype(np.float64)
    y = subject.y
    finite = np.isfinite(x)
    nan_cells = int(np.isnan(x).sum())
    inf_cells = int(np.isinf(x).sum())
    bad_rows = ~finite.all(axis=1)
    if y.dtype.kind == "f":
        bad_rows |= ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
    clean = np.where(finite, x, np.nan)
    with np.errstate(all="ignore"):
        std = np.nanstd(clean, axis=0)
        mean = np.nanmean(clean, axis=0)
        abs_max = np.nanmax(np.abs(clean), axis=0)
    std = np.nan_to_num(std, nan=0.0)
    mean = np.nan_to_num(mean, nan=0.0)
    abs_max = np.nan_to_num(abs_max, nan=0.0)
    constant = std < settings.constant_std
    live_std = std[~constant]
    metrics: dict[str, float] = {
        "rows": float(len(x)),
        "features": float(x.shape[1]),
        "nan_cells": float(nan_cells),
        "inf_cells": float(inf_cells),
        "malformed_cells": float(subject.malformed_cells),
        "bad_rows": float(bad_rows.sum()),
        "bad_row_fraction": float(bad_rows.mean()),
        "constant_columns": float(constant.sum()),
        "feature_abs_max": float(abs_max.max()) if abs_max.size else 0.0,
        "feature_std_max": float(live_std.max()) if live_std.size else 0.0,
        "feature_std_min": float(live_std.min()) if live_std.size else 0.0,
        "feature_std_ratio": float(live_std.max() / live_std.min()) if live_std.size else 1.0,
        "feature_mean_abs_max": float(np.abs(mean).max()) if mean.size else 0.0,
        # how far the features are from standardized: 0 when each has mean 0 and std 1
        "feature_scale_log10": float(np.log10(max(np.sqrt(np.mean(mean**2 + std**2)), 1e-12))),
    }
    details: dict[str, object] = {
        "constant_columns": [
            subject.feature_names[i] if i < len(subject.feature_names) else str(i)
            for i in np.flatnonzero(constant)[:20]
        ],
    }
    if subject.task == "regression":
        finite_y = y[np.isfinite(y)]
        metrics["label_nan"] = float(subject.label_nan_rows)
        metrics["label_mean"] = float(finite_y.mean()) if finite_y.size else 0.0
        metrics["label_std"] = float(finite_y.std()) if finite_y.size else 0.0
        metrics["label_abs_max"] = float(np.abs(finite_y).max()) if finite_y.size else 0.0
    else:
        counts = np.bincount(y.astype(np.int64), minlength=subject.n_classes)
        present = counts[counts > 0]
        freq = counts / counts.sum()
        metrics["classes"] = float(subject.n_classes)
        metrics["classes_present"] = float(len(present))
        metrics["minority_fraction"] = float(freq[counts > 0].min())
        metrics["majority_fraction"] = float(freq.max())
        metrics["imbalance_ratio"] = float(present.min() / present.max())
        details["class_counts"] = {str(i): int(c) for i, c in enumerate(counts)}
    return ProbeResult(probe="data", metrics=metrics, details=details)
