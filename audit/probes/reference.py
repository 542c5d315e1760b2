"""How much skill the data allows: a cheap, well-configured linear learner on the same rows.

A counterfactual that lifts a model from 0 to 0.3 has restored it if 0.3 is about what the
data allows, and has not if a plain linear model reaches 0.9. `linear_reference` gives that
yardstick from arrays alone (numpy, no TensorFlow): ridge regression for regression targets,
class-balanced L2 logistic (softmax) regression for classes, scored on validation rows with
`outcomes.skill`, so the number means what every other skill in the report means.

Every input kind becomes columns of one design matrix (`design`): numeric and tensor inputs
flattened and standardized by the training rows, categorical inputs one-hot over the most
frequent training values, token sequences as a hashed bag of ids. Wide tensors are pooled
to a fixed width, so the cost stays near that of a small dense fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from audit.inputs import InputArray, Inputs
from audit.probes.outcomes import Head, skill

__all__ = ["ReferenceSettings", "design", "linear_reference"]


@dataclass(frozen=True)
class ReferenceSettings:
    """Sizes and regularization of the reference learner."""

    max_columns: int = 1024  # design width cap (an input wider than its share is pooled)
    max_categories: int = 200  # one-hot columns per categorical input (most frequent values)
    token_buckets: int = 256  # hashed bag-of-ids width per token input
    #: ridge penalties tried (x the mean column variance, trace / d); GCV picks one
    ridge_grid: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
    l2: float = 1e-3  # logistic regression's L2 penalty per row
    newton_steps: int = 30  # Newton iterations (two classes, a narrow design)
    newton_max_columns: int = 256  # wider designs take gradient steps (a d x d solve each)
    gradient_steps: int = 300  # accelerated gradient iterations (several classes, wide)
    seed: int = 0  # start of the power iteration bounding the curvature


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


def _ridge(a: np.ndarray, y: np.ndarray, settings: ReferenceSettings) -> np.ndarray:
    """Ridge regression with an unpenalized intercept (the last column), its penalty chosen
    by generalized cross-validation over `settings.ridge_grid` (x the mean column variance)
    from one thin SVD: with as many columns as rows a fixed small penalty overfits, and the
    reference must not understate what the data allows."""
    x = a[:, :-1]
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    n = len(xc)
    u, sv, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    scale = max(float(np.sum(sv**2)) / max(x.shape[1], 1), 1e-12)  # trace / d of x'x
    best, best_score = settings.ridge_grid[0] * scale, np.inf
    for factor in settings.ridge_grid:
        lam = factor * scale
        shrink = sv**2 / (sv**2 + lam)
        residual = float(np.sum(yc**2) - np.sum((1 - (1 - shrink) ** 2)[:, None] * uty**2))
        dof = float(np.sum(shrink))
        score = residual / max(1.0 - dof / n, 1e-6) ** 2
        if score < best_score:
            best, best_score = lam, score
    w = vt.T @ ((sv / (sv**2 + best))[:, None] * uty)
    return np.vstack([w, (y_mean - x_mean @ w)[None, :]])


def _logistic(a: np.ndarray, y: np.ndarray, n_classes: int,
              settings: ReferenceSettings) -> np.ndarray:
    """Class-balanced L2 logistic regression: weights (d, 1) on the logit of class 1 for two
    classes, (d, C) softmax weights for several. Two classes on a narrow design take Newton
    steps; otherwise accelerated gradient steps of a fixed size from the curvature bound."""
    n, d = a.shape
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    row_w = (n / (present.sum() * np.where(present, counts, 1.0)))[y] / n
    penalty = np.full(d, settings.l2)
    penalty[-1] = 0.0
    binary = n_classes <= 2
    if binary and d <= settings.newton_max_columns:
        w = np.zeros(d)
        target = (y == 1).astype(np.float64)
        for _ in range(settings.newton_steps):
            p = _sigmoid(a @ w)
            grad = a.T @ (row_w * (p - target)) + penalty * w
            hess = (a * (row_w * p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-6:
                break
        return w[:, None]
    target = (y == 1).astype(np.float64)[:, None] if binary else np.eye(n_classes)[y]
    # the loss's Hessian is at most (1/4 sigmoid, 1/2 softmax) A' diag(row_w) A
    curvature = (0.25 if binary else 0.5) * _top_eigenvalue(a * np.sqrt(row_w)[:, None],
                                                            settings.seed) + settings.l2
    rate = 1.0 / max(curvature, 1e-12)
    # float32 copies in both layouts: each step reads the design twice, memory-bound
    a32, a32_t = a.astype(np.float32), np.ascontiguousarray(a.T, dtype=np.float32)
    w = np.zeros((d, target.shape[1]))
    velocity = np.zeros_like(w)
    for _ in range(settings.gradient_steps):
        ahead = w + 0.9 * velocity  # Nesterov momentum
        logits = (a32 @ ahead.astype(np.float32)).astype(np.float64)
        if binary:
            p = _sigmoid(logits)
        else:
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        residual = (row_w[:, None] * (p - target)).astype(np.float32)
        grad = (a32_t @ residual).astype(np.float64) + penalty[:, None] * ahead
        velocity = 0.9 * velocity - rate * grad
        w += velocity
    return w


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _top_eigenvalue(m: np.ndarray, seed: int, steps: int = 30) -> float:
    """The largest eigenvalue of m'm by power iteration (an SVD of a wide design costs more
    than the fit), raised 10% as a safe margin."""
    v = np.random.default_rng(seed).normal(0, 1, m.shape[1])
    value = 0.0
    for _ in range(steps):
        u = m.T @ (m @ v)
        value = float(np.linalg.norm(u))
        if value == 0:
            return 0.0
        v = u / value
    return 1.1 * value


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
        w = _ridge(a_train[keep], y[keep], settings)
        return skill(np.asarray(y_val), a_val @ w, task, n_classes, Head(y.shape[1], "linear"))
    labels = np.asarray(y_train, dtype=np.float64).reshape(-1)
    keep = np.isfinite(labels)
    classes = max(int(n_classes), 2)
    labels_int = labels[keep].astype(np.int64)
    if len(np.unique(labels_int)) < 2 or labels_int.min() < 0 or labels_int.max() >= classes:
        return float("nan")
    w = _logistic(a_train[keep], labels_int, classes, settings)
    raw = a_val @ w
    if classes <= 2:
        return skill(np.asarray(y_val), raw, task, 2, Head(1, "sigmoid", from_logits=True))
    return skill(np.asarray(y_val), raw, task, classes,
                 Head(classes, "softmax", from_logits=True))
