"""How much skill the data allows: a cheap, well-configured linear learner on the same rows.

A counterfactual that lifts a model from 0 to 0.3 has restored it if 0.3 is about what the
data allows, and has not if a plain linear model reaches 0.9. `linear_reference` gives that
yardstick from arrays alone (scikit-learn, no TensorFlow): ridge regression with its penalty
cross-validated (`RidgeCV`) for regression targets, class-balanced L2 logistic (softmax)
regression (`LogisticRegression`) for classes, scored on validation rows with
`outcomes.skill`, so the number means what every other skill in the report means.

Every input kind becomes columns of one design matrix (`design`): numeric and tensor inputs
flattened and standardized by the training rows, categorical inputs one-hot over the most
frequent training values, token sequences as a hashed bag of ids. Wide tensors are pooled
to a fixed width, so the cost stays near that of a small dense fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audit.probes.outcomes import Head, skill
from audit.subject.inputs import InputArray, Inputs

if TYPE_CHECKING:  # scikit-learn is imported when a reference is fitted (about 1 s)
    from sklearn.linear_model import LogisticRegression, RidgeCV

__all__ = ["ReferenceSettings", "classifier", "design", "linear_reference", "ridge"]


@dataclass(frozen=True)
class ReferenceSettings:
    """Sizes and regularization of the reference learner."""

    max_columns: int = 1024  # design width cap (an input wider than its share is pooled)
    max_categories: int = 200  # one-hot columns per categorical input (most frequent values)
    token_buckets: int = 256  # hashed bag-of-ids width per token input
    #: ridge penalties tried (x the mean column variance, trace / d); GCV picks one
    ridge_grid: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
    l2: float = 1e-3  # logistic regression's L2 penalty per row
    max_iter: int = 300  # L-BFGS iterations of the logistic regression


class _Encoder:
    """Turns one input into design columns, fitted on the training rows only."""

    def __init__(self, array: InputArray, width: int, settings: ReferenceSettings) -> None:
        self.kind = array.kind
        self.settings = settings
        values = array.values
        n = len(values)
        if self.kind in ("numeric", "tensor"):
            flat = _float_rows(values)
            # an input wider than its share is average-pooled over runs of adjacent values
            # (neighbouring pixels or time steps): O(rows x width), unlike a projection
            self.pool = None
            if flat.shape[1] > width:
                self.pool = (np.arange(width) * flat.shape[1]) // width
                flat = _pooled(flat, self.pool)
            finite = np.where(np.isfinite(flat), flat, np.nan)  # one inf spoils no column
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
                self.mean = np.nanmean(finite, axis=0) if n else np.zeros(flat.shape[1])
                std = np.nanstd(finite, axis=0) if n else np.ones(flat.shape[1])
            self.mean = np.where(np.isfinite(self.mean), self.mean, 0.0)
            self.std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        elif self.kind == "categorical":
            keys = _category_keys(values)
            uniq, counts = np.unique(keys, return_counts=True)
            keep = uniq[np.argsort(-counts, kind="stable")[: min(settings.max_categories, width)]]
            self.index = {k: i for i, k in enumerate(keep)}
        else:  # tokens
            self.buckets = max(1, min(settings.token_buckets, width))

    def transform(self, array: InputArray) -> np.ndarray:
        values = array.values
        n = len(values)
        if self.kind in ("numeric", "tensor"):
            flat = _float_rows(values)
            if self.pool is not None:
                flat = _pooled(flat, self.pool)
            with np.errstate(all="ignore"):
                out = (flat - self.mean) / self.std
            return np.where(np.isfinite(out), out, 0.0)
        if self.kind == "categorical":
            out = np.zeros((n, len(self.index)))
            for row, key in enumerate(_category_keys(values)):
                col = self.index.get(key)
                if col is not None:
                    out[row, col] = 1.0
            return out
        ids = np.asarray(values).reshape(n, -1)
        ids = np.where(np.isfinite(ids.astype(np.float64)), ids, 0).astype(np.int64)
        # a multiplicative hash spreads ids (and their negatives) over the buckets
        buckets = ((ids * 2654435761) % (2**32)) % self.buckets
        out = np.zeros((n, self.buckets))
        np.add.at(out, (np.repeat(np.arange(n), ids.shape[1]), buckets.reshape(-1)), 1.0)
        total = out.sum(axis=1, keepdims=True)
        return out / np.where(total > 0, total, 1.0)


def _float_rows(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)


def _pooled(flat: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Means of the column runs beginning at `starts` (non-finite values count as 0)."""
    clean = np.where(np.isfinite(flat), flat, 0.0)
    sizes = np.diff(np.append(starts, flat.shape[1]))
    return np.add.reduceat(clean, starts, axis=1) / sizes


def _category_keys(values: np.ndarray) -> np.ndarray:
    """One string key per row (bytes decoded, missing as its own value)."""
    flat = np.asarray(values).reshape(len(values), -1)[:, 0] if len(values) else np.array([])
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in flat], dtype=object)


def design(x_train: Inputs, x_val: Inputs,
           settings: ReferenceSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation design matrices (with an intercept column last), every
    input encoded by statistics of the training rows only."""
    settings = settings or ReferenceSettings()
    width = max(1, settings.max_columns // max(1, len(x_train.arrays)))
    train_parts, val_parts = [], []
    for array in x_train.arrays:
        encoder = _Encoder(array, width, settings)
        train_parts.append(encoder.transform(array))
        val_parts.append(encoder.transform(x_val[array.name]))
    train_parts.append(np.ones((len(x_train), 1)))
    val_parts.append(np.ones((len(x_val), 1)))
    return np.hstack(train_parts), np.hstack(val_parts)


def ridge(a: np.ndarray, settings: ReferenceSettings) -> RidgeCV:
    """Ridge regression on the design `a` (its intercept column dropped: scikit-learn fits an
    unpenalized intercept), its penalty chosen by efficient leave-one-out cross-validation
    over `settings.ridge_grid` x the mean column variance: with as many columns as rows a fixed
    small penalty overfits, and the reference must not understate what the data allows."""
    from sklearn.linear_model import RidgeCV

    x = a[:, :-1]
    scale = max(float(np.sum((x - x.mean(axis=0)) ** 2)) / max(x.shape[1], 1), 1e-12)
    return RidgeCV(alphas=tuple(f * scale for f in settings.ridge_grid))


def classifier(n_rows: int, settings: ReferenceSettings,
               balanced: bool = True) -> LogisticRegression:
    """L2 logistic (softmax for several classes) regression, class-balanced for the skill
    (a rare class counts as much as a common one); unweighted where its probabilities must
    estimate how likely each given label is (`label_noise`). scikit-learn minimizes C x the
    weighted sum of row losses + |w|^2 / 2, so C = 1 / (l2 x rows) keeps the penalty per row
    fixed whatever the row count."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0 / (settings.l2 * max(n_rows, 1)),
                              class_weight="balanced" if balanced else None,
                              max_iter=settings.max_iter)


def class_logits(model: LogisticRegression, a: np.ndarray, n_classes: int) -> np.ndarray:
    """Scores in the shape the skill reads: the logit of class 1 (n, 1) for two classes, log
    probabilities (n, C) for several, a class absent from training far below every other."""
    x = a[:, :-1]
    if n_classes <= 2:
        return model.decision_function(x).reshape(-1, 1)
    logp = model.predict_log_proba(x)
    out = np.full((len(x), n_classes), float(np.min(logp, initial=0.0)) - 50.0)
    out[:, model.classes_.astype(np.int64)] = logp
    return out


def linear_reference(x_train: Inputs, y_train: np.ndarray, x_val: Inputs, y_val: np.ndarray,
                     task: str, n_classes: int,
                     settings: ReferenceSettings | None = None) -> float:
    """Validation skill of a regularized linear model fitted on the training rows: ridge for
    regression (R^2), class-balanced logistic regression for classes (balanced-accuracy
    gain). NaN when it cannot say (no rows, one class only, non-finite targets)."""
    settings = settings or ReferenceSettings()
    if len(x_train) == 0 or len(x_val) == 0 or not x_train.arrays:
        return float("nan")
    a_train, a_val = design(x_train, x_val, settings)
    if task == "regression":
        y = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
        keep = np.all(np.isfinite(y), axis=1)
        if keep.sum() < 2:
            return float("nan")
        model = ridge(a_train[keep], settings).fit(a_train[keep][:, :-1], y[keep])
        pred = model.predict(a_val[:, :-1]).reshape(len(a_val), -1)
        return skill(np.asarray(y_val), pred, task, n_classes, Head(y.shape[1], "linear"))
    labels = np.asarray(y_train, dtype=np.float64).reshape(-1)
    keep = np.isfinite(labels)
    classes = max(int(n_classes), 2)
    labels_int = labels[keep].astype(np.int64)
    if len(np.unique(labels_int)) < 2 or labels_int.min() < 0 or labels_int.max() >= classes:
        return float("nan")
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # near-separable classes
        model = classifier(int(keep.sum()), settings).fit(a_train[keep][:, :-1], labels_int)
    raw = class_logits(model, a_val, classes)
    if classes <= 2:
        return skill(np.asarray(y_val), raw, task, 2, Head(1, "sigmoid", from_logits=True))
    return skill(np.asarray(y_val), raw, task, classes,
                 Head(classes, "softmax", from_logits=True))
