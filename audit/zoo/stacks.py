"""Scenarios of the network's own units and head, as the peer benchmark (AUTOTRAINER) met
them: stacks of one hidden activation (exponential, linear, deep sigmoid at the optimizer's
typical rate), a multi-unit sigmoid head under categorical cross-entropy (which Keras
normalizes, so it trains), and overlapping classes with clean labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.zoo.builders import _fit, mlp, opt
from audit.zoo.datasets import blobs
from audit.zoo.shapes import Built


def rings(n: int, seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy concentric rings in 2-D (radius 1 and 0.5): no line separates them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 0, 1.0, 0.5)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return (x + rng.normal(0, noise, x.shape)).astype(np.float32), y.astype(np.int64)


def binary_exponential_stack() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Four exponential layers: their outputs compound until the weights are NaN."""
    x, y = rings(800, seed=41)
    model = mlp(2, [32] * 4, 1, "sigmoid", act="exponential")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-2), "binary_crossentropy", 30)


def binary_linear_stack() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Three linear hidden layers: a linear model, which cannot separate rings."""
    x, y = rings(800, seed=42)
    model = mlp(2, [32] * 3, 1, "sigmoid", act="linear")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "binary_crossentropy", 30)


def binary_deep_sigmoid_adam() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Eight sigmoid layers of 5 under Adam at its typical 1e-3: gradients vanish; a higher
    rate compensates, ReLU units remove the cause."""
    x, y = rings(800, seed=43)
    model = mlp(2, [5] * 8, 1, "sigmoid", act="sigmoid")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "binary_crossentropy", 40,
                             batch_size=128)


def multiclass_sigmoid_head_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Three sigmoid units under categorical cross-entropy: Keras divides them by their sum,
    so they train as a softmax would."""
    x, y = blobs(900, 6, 3, seed=44)
    model = mlp(6, [32], 3, "sigmoid")
    return model, x, y, _fit(model, x, np.eye(3, dtype=np.float32)[y], opt("adam", 1e-3),
                             "categorical_crossentropy", 20)


def multiclass_overlap_healthy() -> Built:
    """Three overlapping classes, every label as drawn: a linear learner errs on about 15% of
    the rows, and confident learning disputes about 10% of them (overlap, not noise). Trained
    on 600 rows, audited on 600 others, as a fleet audits a model on its evaluation data."""
    x, y = blobs(1200, 10, 3, seed=45, sep=0.8)
    train, held = slice(0, 600), slice(600, None)
    model = mlp(10, [64, 64], 3, "softmax")
    training = _fit(model, x[train], y[train], opt("adam", 1e-3),
                    "sparse_categorical_crossentropy", 60)
    columns = {f"x{i}": x[held, i] for i in range(x.shape[1])} | {"y": y[held]}
    return Built(model, columns, "y", training)


