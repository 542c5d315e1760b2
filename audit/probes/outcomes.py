"""How good and how responsive a model's outputs are, from arrays alone (numpy, no TF).

Shared by the `sensitivity` probe (the model as it is) and the `retrain` probe (each retrained
clone), so "skill" and "spread" mean the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Head:
    """What the model's outputs are: how many units and what they mean."""

    units: int
    activation: str  # "sigmoid", "softmax", "linear", ...
    from_logits: bool = False

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Outputs as class scores in [0, 1] when the head is a classifier on logits."""
        raw = raw.reshape(len(raw), -1)
        if not self.from_logits:
            return raw
        if raw.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-np.clip(raw, -60, 60)))
        shifted = raw - raw.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)


def predicted_classes(scores: np.ndarray, n_classes: int) -> np.ndarray:
    """Class decisions from scores: threshold one unit at 0.5, argmax over several."""
    scores = scores.reshape(len(scores), -1)
    if scores.shape[1] == 1:
        if n_classes <= 2:
            return (scores[:, 0] > 0.5).astype(np.int64)
        return np.clip(np.round(scores[:, 0]), 0, n_classes - 1).astype(np.int64)
    return np.argmax(scores[:, : max(n_classes, 2)], axis=1).astype(np.int64)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination: 1 is perfect, 0 is the mean predictor, below 0 is worse."""
    y = y.reshape(len(y), -1).astype(np.float64)
    pred = pred.reshape(len(pred), -1)[:, : y.shape[1]].astype(np.float64)
    if not np.all(np.isfinite(pred)):
        return float("nan")
    total = np.sum((y - y.mean(axis=0)) ** 2)
    if total <= 0:
        return float("nan")
    return float(1.0 - np.sum((y - pred) ** 2) / total)


def balanced_accuracy_gain(y: np.ndarray, classes: np.ndarray, n_classes: int) -> float:
    """Skill over the trivial classifier: 0 for any constant guess, 1 for perfect.

    Balanced accuracy (mean per-class recall) is immune to imbalance: predicting the majority
    everywhere scores exactly 1/C, so a collapsed model gets 0 however skewed the labels are.
    """
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    recalls = [float(np.mean(classes[y == c] == c)) for c in present]
    chance = 1.0 / len(present)
    return float((np.mean(recalls) - chance) / (1.0 - chance))


def skill(
    y: np.ndarray, raw: np.ndarray, task: str, n_classes: int, head: Head
) -> float:
    """Skill over the trivial predictor (mean, constant class); 1 is perfect."""
    if not np.all(np.isfinite(raw)):
        return float("nan")
    if task == "regression":
        return r2(y, raw)
    return balanced_accuracy_gain(y, predicted_classes(head.probabilities(raw), n_classes),
                                  n_classes)


def label_spread(y: np.ndarray, task: str, n_classes: int) -> float:
    """How much the labels vary: std for regression, mean one-hot std for classes."""
    if task == "regression":
        return float(np.mean(np.std(y.reshape(len(y), -1), axis=0)))
    freq = np.bincount(y.astype(np.int64), minlength=max(n_classes, 2)) / len(y)
    return float(np.mean(np.sqrt(freq * (1 - freq))[freq > 0]))


def output_spread(raw: np.ndarray, task: str, head: Head) -> float:
    """How much the outputs vary across inputs (scores for classifiers, values for regression)."""
    scores = raw if task == "regression" else head.probabilities(raw)
    scores = scores.reshape(len(scores), -1)
    if not np.all(np.isfinite(scores)):
        return float("nan")
    with np.errstate(over="ignore"):  # a diverged model's outputs near 1e300: its spread is inf
        return float(np.mean(np.std(scores.astype(np.float64), axis=0)))


def spread_ratio(y: np.ndarray, raw: np.ndarray, task: str, n_classes: int, head: Head) -> float:
    """Output spread relative to label spread: near 0 means the output is flat."""
    denominator = label_spread(y, task, n_classes)
    spread = output_spread(raw, task, head)
    if not np.isfinite(spread):
        return float("nan")
    return float(spread / denominator) if denominator > 0 else float("nan")
