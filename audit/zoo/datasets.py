"""The zoo's synthetic datasets: seeded numpy generators of features and labels with known
structure (a line, class clusters, smooth and wavy targets, a shared factor, a weak signal).

The plain MLP scenarios (`builders`) and benchmarks/zoo_fixes.py draw their rows here; each
generator fixes its own seed, so the same call gives the same rows anywhere.
"""

from __future__ import annotations

import numpy as np


def linear(n: int, low: float, high: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The classic `y = 2x + 1 + noise` with numpy seed 42."""
    np.random.seed(42)
    x = np.random.uniform(low, high, (n, 1)).astype(np.float32)
    y = (2 * x[:, 0] + 1 + np.random.normal(0, noise, n)).astype(np.float32)
    return x, y


def blobs(n: int, d: int, classes: int, seed: int, sep: float = 2.0,
          weights: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class clusters in `d` dimensions (standardized-ish features)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (classes, d))
    p = np.array(weights if weights else [1.0] * classes)
    y = rng.choice(classes, size=n, p=p / p.sum())
    x = centers[y] + rng.normal(0, 1.0, (n, d))
    return x.astype(np.float32), y.astype(np.int64)


def smooth_regression(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth nonlinear target of standardized inputs, target std about 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    w = rng.normal(0, 1, d) / np.sqrt(d)
    y = np.tanh(x @ w) + 0.5 * np.sin(x[:, 0]) + rng.normal(0, 0.05, n)
    return x, y.astype(np.float32)


def shared_factor_regression(n: int, seed: int, d: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """`d` features that each look standardized (|mean| <= 0.2 + sampling, std about 1.75)
    but share one factor, so the input covariance has one eigenvalue near 1450: plain SGD
    diverges above a rate of about 1/1450 although no single feature looks unscaled. The
    target is linear in the features (their mean plus noise), R^2 about 0.9 attainable.
    The features' loadings and means are fixed; `seed` draws the rows."""
    layout = np.random.default_rng(2026)
    loading = layout.uniform(1.65, 1.75, d)
    mean = layout.uniform(-0.2, 0.2, d)
    rng = np.random.default_rng(seed)
    factor = rng.normal(0, 1, (n, 1))
    factor -= factor.mean()  # the factor shifts every feature's mean at once: keep it at 0
    x = mean + factor * loading + rng.normal(0, 0.35, (n, d))
    y = x.mean(axis=1) + rng.normal(0, 0.5, n)
    return x.astype(np.float32), y.astype(np.float32)


def wavy_regression(n: int, seed: int, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A nonlinear target of standardized inputs with a higher frequency and an offset (mean
    about 0.6, std about 1.5): a small MLP needs a few hundred optimizer steps at a typical
    rate to fit it. The target function is fixed; `seed` draws the rows."""
    w = np.random.default_rng(77).normal(0, 1, d) / np.sqrt(d)
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    y = np.tanh(2 * x @ w) + 0.5 * np.sin(2 * x[:, 0]) + rng.normal(0, 0.05, n)
    return x, (1.5 * y + 0.8).astype(np.float32)


def weak_signal_binary(n: int, seed: int, positives: float,
                       d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Positives shifted by 1.1 standard deviations along two of `d` standard normal
    features: the best balanced accuracy gain is about 0.42 (2 * Phi(0.55) - 1). At 5%
    positives the posterior never reaches 0.5, so plain cross-entropy predicts the majority."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positives).astype(np.int64)
    shift = np.zeros(d)
    shift[:2] = 1.1 / np.sqrt(2)
    x = rng.normal(0, 1, (n, d)) + y[:, None] * shift
    return x.astype(np.float32), y.astype(np.float32)
