"""What the labels look like, for the rules that compare them with what the loss expects.

Read by the data probe (which records it) and by the label repair (which acts on it), so it
lives below both: a fault unit never imports the probes that measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from audit.evidence.keys import Data

__all__ = ["LabelRules", "label_checks"]


@dataclass(frozen=True)
class LabelRules:
    """Thresholds of the label checks (the data probe's settings carry the same fields)."""

    few_label_values: int = 50  # labels with at most this many distinct values may be ids
    max_label_scale: int = 1000  # labels that are ids / k are looked for up to this k
    near_integer: float = 0.02  # a label this close to an integer (and not one) is nearly one


def _fraction_scale(values: np.ndarray, rules: LabelRules) -> float:
    """The smallest k for which every distinct label times k is a small class id (labels that
    are class ids divided by a scale), NaN when the labels are integers already or no k fits.

    The ids must be compact (0 to `few_label_values`): ids / 255 are {0, 1, ..., 9} / 255,
    while integers with round-off ({0.999, 2.001}) only fit k = 1000 as ids in the thousands.
    """
    if np.allclose(values, np.round(values)):
        return float("nan")
    for k in range(2, rules.max_label_scale + 1):
        scaled = values * k
        # ids stored as float32 are off by ~1e-6; a neighbouring k is off by 1/k of an id
        if np.allclose(scaled, np.round(scaled), rtol=0, atol=1e-3):
            ids = np.round(scaled)
            compact = ids.min() >= 0 and ids.max() < rules.few_label_values
            return float(k) if compact else float("nan")
    return float("nan")


def label_checks(y: np.ndarray, task: str, rules: LabelRules = LabelRules()) -> dict[str, float]:
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
    nearly = (off > 0) & (off <= rules.near_integer)
    if 2 <= len(values) <= rules.few_label_values:
        out[Data.LABEL_FRACTION_SCALE.metric] = _fraction_scale(values, rules)
    # ids over a large scale (ids / 255 all lie within 0.04 of 0) are no round-off: a scale
    # that gives compact ids explains them, and rounding would merge every class into one
    scaled_ids = math.isfinite(out[Data.LABEL_FRACTION_SCALE.metric])
    if len(np.unique(np.round(values))) <= rules.few_label_values and not scaled_ids:
        out[Data.LABEL_NEAR_INTEGER.metric] = float(nearly.mean()) if np.all(
            off <= rules.near_integer) else 0.0
    integral = np.all(off == 0)  # exact: class ids are stored as exact integers
    if (task == "regression" and integral and 3 <= len(values) <= rules.few_label_values
            and values[0] == 0 and np.array_equal(values, np.arange(len(values)))):
        out[Data.LABEL_CLASS_IDS.metric] = 1.0
    return out
