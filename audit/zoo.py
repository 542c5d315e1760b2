"""The scenario zoo: small Keras models on synthetic data, each with a known fault (two-change
bugs: a primary fault and a contributing one).

Used by the demo, the tests and the benchmarks. Every model is trained the ordinary way
(`compile` + `fit`) and saved. The plain MLP scenarios here save `.keras` files with their data as
Parquet (`x0..xN`, label `y`); the production-shaped ones (`audit/zoo_shapes.py`: named inputs
with preprocessing inside, CNN, LSTM, Conv1D, two heads, SavedModel exports) and the Keras 2
ones (`audit/zoo_keras2.py`: SavedModel folders and `.h5` files written by `tf_keras`) bring
their own columns and formats. The expected fault is what the scenario was built to show; the
auditor must find it from evidence.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit import faults, zoo_keras2, zoo_shapes
from audit.zoo_shapes import Built


@dataclass(frozen=True)
class ZooCase:
    """A built scenario: where its model and data are and what the audit should find."""

    name: str
    model_path: str
    data_path: str
    label: str
    task: str
    training: dict[str, Any]
    expected_fault: str | None
    description: str
    output: str | None = None  # the audited head of a multi-output model
    retrainable: bool = True  # False for a SavedModel export (inference probes only)
    shape: str = "mlp"  # mlp | structured | cnn | text | sequence | two_heads | export | keras2

    def spec_fields(self) -> dict[str, Any]:
        """The `CaseSpec` (or manifest `cases:` entry) fields that audit this case as built:
        its files, label, head and the training the zoo used."""
        fields: dict[str, Any] = {"name": self.name, "model": self.model_path,
                                  "data": self.data_path, "label": self.label,
                                  "training": dict(self.training)}
        if self.output is not None:
            fields["output"] = self.output
        return fields


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str
    expected_fault: str | None
    description: str
    build: Callable[[], Any] = field(repr=False)  # -> (model, x, y, training) or `Built`
    shape: str = "mlp"
    #: a two-change bug's other fault: a confirmed contributing finding naming the primary
    contributing: str | None = None


# ---------------------------------------------------------------- data


def _linear(n: int, low: float, high: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The classic `y = 2x + 1 + noise` with numpy seed 42."""
    np.random.seed(42)
    x = np.random.uniform(low, high, (n, 1)).astype(np.float32)
    y = (2 * x[:, 0] + 1 + np.random.normal(0, noise, n)).astype(np.float32)
    return x, y


def _blobs(n: int, d: int, classes: int, seed: int, sep: float = 2.0,
           weights: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class clusters in `d` dimensions (standardized-ish features)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (classes, d))
    p = np.array(weights if weights else [1.0] * classes)
    y = rng.choice(classes, size=n, p=p / p.sum())
    x = centers[y] + rng.normal(0, 1.0, (n, d))
    return x.astype(np.float32), y.astype(np.int64)


def _smooth_regression(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
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


# ---------------------------------------------------------------- models


def _mlp(d: int, hidden: list[int], out_units: int, out_act: str | None, act: str = "relu",
         **dense: Any) -> Any:
    import keras

    layers: list[Any] = [keras.Input((d,))]
    layers += [keras.layers.Dense(h, activation=act, **dense) for h in hidden]
    layers.append(keras.layers.Dense(out_units, activation=out_act))
    return keras.Sequential(layers)


def _fit(model: Any, x: np.ndarray, y: np.ndarray, optimizer: Any, loss: str, epochs: int,
         batch_size: int = 32) -> dict[str, Any]:
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return {"epochs": epochs, "batch_size": batch_size}


def _opt(name: str, lr: float) -> Any:
    import keras

    return {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop}[name](learning_rate=lr)


def _fit_repeated(model: Any, x: np.ndarray, y: np.ndarray, optimizer: Any, loss: str,
                  epochs: int, batch_size: int = 32) -> dict[str, Any]:
    """`epochs` passes over the rows as one shuffled pass over the rows repeated `epochs`
    times: the same optimizer steps (up to the last partial batch of each epoch) without
    Keras' per-epoch overhead, so a 200-epoch model builds in seconds."""
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(np.tile(x, (epochs, 1)), np.tile(y, epochs), epochs=1, batch_size=batch_size,
              shuffle=True, verbose=0)
    return {"epochs": epochs, "batch_size": batch_size}


# ---------------------------------------------------------------- scenarios


def linear_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = _linear(200, 0, 1, 0.1)
    model = _mlp(1, [], 1, None)
    return model, x, y, _fit(model, x, y, _opt("adam", 0.01), "mse", 100)


def linear_lr_too_low() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = _linear(200, 0, 1, 0.1)
    model = _mlp(1, [], 1, None)
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-5), "mse", 100)


def linear_raw_inputs() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """The write-up's 'unscaled' case: measured, it trains fine (the audit must say healthy)."""
    x, y = _linear(200, 0, 100, 10)
    model = _mlp(1, [], 1, None)
    return model, x, y, _fit(model, x, y, _opt("adam", 0.01), "mse", 100)


def binary_mlp_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = _blobs(800, 8, 2, seed=1)
    model = _mlp(8, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "binary_crossentropy", 20)


def multiclass_deep_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = _blobs(1000, 12, 4, seed=2)
    model = _mlp(12, [32, 32, 16], 4, "softmax")
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "sparse_categorical_crossentropy",
                             20)


def regression_lr_too_high() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = _smooth_regression(800, 6, seed=3)
    model = _mlp(6, [32, 16], 1, None)
    return model, x, y, _fit(model, x, y, _opt("sgd", 3.0), "mse", 20)


def regression_unscaled_inputs() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Features on wildly different scales feeding tanh units: they saturate and stall."""
    x, y = _smooth_regression(800, 5, seed=4)
    scales = np.array([1000.0, 1.0, 0.001, 50.0, 300.0], dtype=np.float32)
    offsets = np.array([5000.0, 0.0, 0.0, 200.0, -900.0], dtype=np.float32)
    model = _mlp(5, [16, 16], 1, None, act="tanh")
    raw = x * scales + offsets
    return model, raw, y, _fit(model, raw, y, _opt("adam", 1e-3), "mse", 20)


def regression_unscaled_targets() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = _smooth_regression(800, 4, seed=5)
    y = (y * 3000 + 20000).astype(np.float32)
    model = _mlp(4, [16], 1, None)
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "mse", 20)


def multiclass_loss_mismatch() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Binary cross-entropy and one sigmoid unit on a three-class problem."""
    x, y = _blobs(900, 6, 3, seed=6)
    model = _mlp(6, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "binary_crossentropy", 20)


def regression_saturated() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Sigmoid hidden units initialized with huge weights sit in their flat tails."""
    import keras

    x, y = _smooth_regression(800, 8, seed=7)
    model = _mlp(8, [8, 8], 1, None, act="sigmoid",
                 kernel_initializer=keras.initializers.RandomNormal(stddev=20.0, seed=7))
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "mse", 20)


def regression_dead_relu() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """A strongly negative bias init leaves every ReLU off for every input."""
    import keras

    x, y = _smooth_regression(800, 6, seed=8)
    model = _mlp(6, [32, 32], 1, None,
                 bias_initializer=keras.initializers.Constant(-8.0))
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "mse", 20)


def deep_vanishing() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Ten sigmoid layers under plain SGD: the first layers receive almost no gradient."""
    x, y = _blobs(800, 8, 2, seed=9)
    model = _mlp(8, [16] * 10, 1, "sigmoid", act="sigmoid")
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "binary_crossentropy", 20)


def deep_exploding() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Six ReLU layers initialized too large: activations and gradients blow up."""
    import keras

    x, y = _smooth_regression(800, 8, seed=10)
    model = _mlp(8, [32] * 6, 1, None,
                 kernel_initializer=keras.initializers.RandomNormal(stddev=1.5, seed=10))
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "mse", 20)


def binary_class_imbalance() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """3% positives that overlap the majority: plain training predicts the majority only."""
    x, y = _blobs(1500, 6, 2, seed=11, sep=0.6, weights=[0.97, 0.03])
    model = _mlp(6, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "binary_crossentropy", 20)


def regression_bad_data() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """5% of rows carry NaN cells; one NaN batch turns every weight into NaN."""
    x, y = _smooth_regression(800, 5, seed=12)
    rng = np.random.default_rng(12)
    bad = rng.choice(len(x), size=40, replace=False)
    x[bad, rng.integers(0, 5, size=40)] = np.nan
    model = _mlp(5, [16], 1, None)
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "mse", 10)


def multiclass_undertrained() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """A sound model and optimizer stopped after a single epoch."""
    x, y = _blobs(600, 10, 5, seed=13, sep=1.5)
    model = _mlp(10, [32], 5, "softmax")
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "sparse_categorical_crossentropy", 1)


def regression_optimizer_stalled() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Three sigmoid layers under plain SGD(0.01) sit on a plateau; Adam leaves it at once."""
    x, y = _smooth_regression(800, 8, seed=14)
    model = _mlp(8, [16] * 3, 1, None, act="sigmoid")
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "mse", 20)


def regression_sgd_too_brief() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Two faults at once: sigmoid layers under plain SGD (a plateau only an adaptive optimizer
    leaves quickly) and training stopped after two epochs (too short even for Adam)."""
    x, y = _smooth_regression(800, 8, seed=15)
    model = _mlp(8, [16] * 3, 1, None, act="sigmoid")
    return model, x, y, _fit(model, x, y, _opt("sgd", 0.01), "mse", 2)


def regression_raw_inputs_high_lr() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Two faults at once: raw inputs in the hundreds, and an SGD rate that diverges even on
    standardized inputs; the typical rate still diverges on the raw ones."""
    x, y = _smooth_regression(800, 6, seed=16)
    scales = np.array([300.0, 50.0, 800.0, 120.0, 20.0, 500.0], dtype=np.float32)
    raw = x * scales + scales
    model = _mlp(6, [32, 16], 1, None)
    return model, raw, y, _fit(model, raw, y, _opt("sgd", 1.0), "mse", 20)


def multiclass_fraction_labels() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Class ids divided by 4 upstream (0, 0.25, 0.5, 0.75): sparse cross-entropy casts them
    to integers, so every label becomes class 0."""
    x, y = _blobs(800, 8, 4, seed=17)
    model = _mlp(8, [16], 4, "softmax")
    frac = (y / 4).astype(np.float32)
    return model, x, frac, _fit(model, x, frac, _opt("adam", 1e-3),
                                "sparse_categorical_crossentropy", 20)


def multiclass_near_integer_labels() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Class ids stored as floats with round-off (2.999 for 3): the cast to integers moves
    half of every class into the class below."""
    x, y = _blobs(800, 8, 4, seed=18)
    noise = np.random.default_rng(18).uniform(-0.01, 0.01, len(y))
    near = (y + noise).astype(np.float32)
    model = _mlp(8, [16], 4, "softmax")
    return model, x, near, _fit(model, x, near, _opt("adam", 1e-3),
                                "sparse_categorical_crossentropy", 20)


def binary_constant_label() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Every row labelled 1 (a filter upstream kept one class): nothing to learn."""
    x, _ = _blobs(600, 6, 2, seed=19)
    y = np.ones(len(x), dtype=np.float32)
    model = _mlp(6, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, _opt("adam", 1e-3), "binary_crossentropy", 10)


#: the new scenarios' sizes and rates, shared with benchmarks/zoo_fixes.py, which trains their
#: fixes and "not enough" variants
SHARED_FACTOR_ROWS, SHARED_FACTOR_EPOCHS = 600, 20
WAVY_ROWS, WAVY_EPOCHS, WAVY_BATCH, WAVY_HIDDEN = 200, 200, 64, [16]
WEAK_ROWS, WEAK_EPOCHS, WEAK_HIDDEN = 600, 30, [8]


def _shared_factor_linear(lr: float) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = shared_factor_regression(SHARED_FACTOR_ROWS, seed=20)
    model = _mlp(x.shape[1], [], 1, None)
    return model, x, y, _fit_repeated(model, x, y, _opt("sgd", lr), "mse",
                                      SHARED_FACTOR_EPOCHS)


def linear_sgd_diverges() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Dense(1) under SGD(0.01) on 500 correlated, individually scaled features: diverges
    (and still does at 0.001); 1e-4 and 1e-5 fit."""
    return _shared_factor_linear(0.01)


def linear_sgd_small_rate_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    return _shared_factor_linear(1e-4)


def _wavy_rmsprop(lr: float) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = wavy_regression(WAVY_ROWS, seed=21)
    model = _mlp(x.shape[1], WAVY_HIDDEN, 1, None)
    return model, x, y, _fit_repeated(model, x, y, _opt("rmsprop", lr), "mse", WAVY_EPOCHS,
                                      WAVY_BATCH)


def regression_rmsprop_long_low_rate() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """RMSprop at 1e-5 (100x below typical) for 200 epochs on 200 rows: fails; 1e-3 for the
    same steps fits, 1e-3 for 30 epochs does not yet."""
    return _wavy_rmsprop(1e-5)


def regression_rmsprop_long_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    return _wavy_rmsprop(1e-3)


def _weak_signal(positives: float, seed: int) -> tuple[Any, np.ndarray, np.ndarray,
                                                       dict[str, Any]]:
    x, y = weak_signal_binary(WEAK_ROWS, seed=seed, positives=positives)
    model = _mlp(x.shape[1], WEAK_HIDDEN, 1, "sigmoid")
    return model, x, y, _fit_repeated(model, x, y, _opt("adam", 1e-3), "binary_crossentropy",
                                      WEAK_EPOCHS)


def binary_weak_signal_imbalanced() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """5% positives with a weak signal under plain cross-entropy: predicts the majority;
    balanced class weights recover most of the attainable skill."""
    return _weak_signal(0.05, seed=22)


def binary_weak_signal_balanced_healthy() -> tuple[Any, np.ndarray, np.ndarray,
                                                   dict[str, Any]]:
    """The same weak signal at 50/50: modest skill, but all the data allows."""
    return _weak_signal(0.5, seed=23)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("linear_healthy", "regression", None,
                 "y = 2x + 1, x in 0..1, Dense(1), Adam(0.01), 100 epochs", linear_healthy),
        Scenario("linear_raw_inputs", "regression", None,
                 "y = 2x + 1, raw x in 0..100, noise std 10, Adam(0.01): trains fine",
                 linear_raw_inputs),
        Scenario("binary_mlp_healthy", "binary", None, "8 features, one ReLU layer, Adam",
                 binary_mlp_healthy),
        Scenario("multiclass_deep_healthy", "multiclass", None,
                 "4 classes, 12 features, three ReLU layers, Adam", multiclass_deep_healthy),
        Scenario("linear_lr_too_low", "regression", "lr_too_low",
                 "y = 2x + 1, Dense(1), Adam(1e-5), 100 epochs", linear_lr_too_low),
        Scenario("regression_lr_too_high", "regression", "lr_too_high",
                 "two ReLU layers, SGD at 3.0", regression_lr_too_high),
        Scenario("regression_optimizer_stalled", "regression", "optimizer_stalled",
                 "three sigmoid layers, plain SGD(0.01)", regression_optimizer_stalled),
        Scenario("regression_unscaled_inputs", "regression", "unscaled_inputs",
                 "features scaled 1e-3..1e3 into tanh units", regression_unscaled_inputs),
        Scenario("regression_unscaled_targets", "regression", "unscaled_targets",
                 "targets around 20000 +- 3000, Adam(1e-3)", regression_unscaled_targets),
        Scenario("multiclass_loss_mismatch", "multiclass", "loss_mismatch",
                 "3 classes, one sigmoid unit, binary cross-entropy", multiclass_loss_mismatch),
        Scenario("regression_saturated", "regression", "saturated_activations",
                 "two narrow sigmoid layers with N(0, 20) init", regression_saturated),
        Scenario("regression_dead_relu", "regression", "dead_relu",
                 "ReLU layers with bias init -8", regression_dead_relu),
        Scenario("deep_vanishing", "binary", "vanishing_gradient",
                 "ten sigmoid layers, SGD(0.01)", deep_vanishing),
        Scenario("deep_exploding", "regression", "exploding_gradient",
                 "six ReLU layers with N(0, 1.5) init", deep_exploding),
        Scenario("binary_class_imbalance", "binary", "class_imbalance",
                 "3% overlapping positives", binary_class_imbalance),
        Scenario("regression_bad_data", "regression", "bad_data",
                 "5% of rows with a NaN cell", regression_bad_data),
        Scenario("multiclass_undertrained", "multiclass", "undertrained",
                 "5 classes, SGD(0.01), one epoch", multiclass_undertrained),
        Scenario("regression_sgd_too_brief", "regression", "optimizer_stalled",
                 "three sigmoid layers, plain SGD(0.01), two epochs", regression_sgd_too_brief,
                 contributing="undertrained"),
        Scenario("regression_raw_inputs_high_lr", "regression", "lr_too_high",
                 "raw inputs in the hundreds, two ReLU layers, SGD(1.0)",
                 regression_raw_inputs_high_lr, contributing="unscaled_inputs"),
        Scenario("multiclass_fraction_labels", "regression", "bad_data",
                 "4 classes whose ids were divided by 4, sparse cross-entropy",
                 multiclass_fraction_labels),
        Scenario("multiclass_near_integer_labels", "regression", "bad_data",
                 "4 classes stored as floats within 0.01 of their ids, sparse cross-entropy",
                 multiclass_near_integer_labels),
        Scenario("binary_constant_label", "regression", "bad_data",
                 "every label is 1, sigmoid + binary cross-entropy", binary_constant_label),
        Scenario("linear_sgd_diverges", "regression", "lr_too_high",
                 "Dense(1), SGD(0.01), 500 scaled but strongly correlated features",
                 linear_sgd_diverges),
        Scenario("linear_sgd_small_rate_healthy", "regression", None,
                 "the same data and Dense(1) under SGD(1e-4)", linear_sgd_small_rate_healthy),
        Scenario("regression_rmsprop_long_low_rate", "regression", "lr_too_low",
                 "one ReLU layer, RMSprop(1e-5), 200 epochs on 200 rows",
                 regression_rmsprop_long_low_rate),
        Scenario("regression_rmsprop_long_healthy", "regression", None,
                 "the same model under RMSprop(1e-3), 200 epochs",
                 regression_rmsprop_long_healthy),
        Scenario("binary_weak_signal_imbalanced", "binary", "class_imbalance",
                 "5% positives, a weak signal, plain cross-entropy",
                 binary_weak_signal_imbalanced),
        Scenario("binary_weak_signal_balanced_healthy", "binary", None,
                 "the same weak signal with 50/50 labels", binary_weak_signal_balanced_healthy),
        Scenario("structured_healthy", "binary", None,
                 "named inputs age/income (Normalization) and city (StringLookup), Adam",
                 zoo_shapes.structured_healthy, "structured"),
        Scenario("structured_lr_too_low", "binary", "lr_too_low",
                 "the structured model under Adam(1e-6)", zoo_shapes.structured_lr_too_low,
                 "structured"),
        Scenario("cnn_healthy", "multiclass", None, "8x8 images, Conv2D + pooling, Adam",
                 zoo_shapes.cnn_healthy, "cnn"),
        Scenario("cnn_lr_too_high", "multiclass", "lr_too_high", "the CNN under SGD(20)",
                 zoo_shapes.cnn_lr_too_high, "cnn"),
        Scenario("text_lstm_healthy", "binary", None, "token sequences, Embedding + LSTM, Adam",
                 zoo_shapes.text_lstm_healthy, "text"),
        Scenario("text_lstm_lr_too_low", "binary", "lr_too_low",
                 "the LSTM under Adam(1e-6)", zoo_shapes.text_lstm_lr_too_low, "text"),
        Scenario("seq_conv1d_healthy", "regression", None,
                 "two-channel sequences, Conv1D + global max pooling, Adam",
                 zoo_shapes.seq_conv1d_healthy, "sequence"),
        Scenario("seq_conv1d_unscaled_targets", "regression", "unscaled_targets",
                 "the Conv1D model on targets around 30000", zoo_shapes.seq_conv1d_unscaled_targets,
                 "sequence"),
        Scenario("two_heads_score_healthy", "regression", None,
                 "a two-headed model audited on its regression head",
                 zoo_shapes.two_heads_score_healthy, "two_heads"),
        Scenario("two_heads_risk_loss_mismatch", "multiclass", "loss_mismatch",
                 "the same model audited on its 3-class head built as one sigmoid unit",
                 zoo_shapes.two_heads_risk_loss_mismatch, "two_heads"),
        Scenario("export_healthy", "binary", None,
                 "the structured model as a SavedModel export with named inputs",
                 zoo_shapes.export_healthy, "export"),
        Scenario("export_flat", "binary", "flat_output",
                 "a structured model collapsed by SGD(50), shipped as an export",
                 zoo_shapes.export_flat, "export"),
        Scenario("keras2_savedmodel_healthy", "binary", None,
                 "8 features, Dense + BatchNormalization + Dropout, Adam, a Keras 2 SavedModel",
                 zoo_keras2.keras2_savedmodel_healthy, "keras2"),
        Scenario("keras2_savedmodel_lr_too_low", "regression", "lr_too_low",
                 "linear_lr_too_low trained and saved by Keras 2 (tf_keras) as a SavedModel",
                 zoo_keras2.keras2_savedmodel_lr_too_low, "keras2"),
        Scenario("keras2_h5_lr_too_low", "regression", "lr_too_low",
                 "linear_lr_too_low trained and saved by Keras 2 (tf_keras) as .h5",
                 zoo_keras2.keras2_h5_lr_too_low, "keras2"),
    ]
}


def build_scenario(scenario: Scenario, folder: Path) -> ZooCase:
    """Train the scenario's model and save it with its data under `folder`."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(42)
    built = scenario.build()
    if not isinstance(built, Built):
        model, x, y, training = built
        built = Built(model, {**{f"x{i}": x[:, i] for i in range(x.shape[1])}, "y": y}, "y",
                      training)
    folder.mkdir(parents=True, exist_ok=True)
    if built.save_as == "savedmodel":
        model_path = folder / f"{scenario.name}.savedmodel"
        built.model.export(str(model_path), verbose=False)
    elif built.save_as in zoo_keras2.SAVE_AS:
        model_path = zoo_keras2.save(built.model, folder, scenario.name, built.save_as)
    else:
        model_path = folder / f"{scenario.name}.keras"
        built.model.save(model_path)
    data_path = folder / f"{scenario.name}.{built.data_as}"
    if built.data_as == "npz":
        np.savez(data_path, **built.columns)
    else:
        pq.write_table(pa.table({k: _arrow(v) for k, v in built.columns.items()}), data_path)
    return ZooCase(scenario.name, str(model_path), str(data_path), built.label, scenario.task,
                   built.training, scenario.expected_fault, scenario.description,
                   output=built.output, retrainable=built.save_as != "savedmodel",
                   shape=scenario.shape)


def _arrow(values: np.ndarray) -> Any:
    """A column for Parquet: 2-D arrays become `fixed_size_list` columns (images, sequences)."""
    import pyarrow as pa

    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    if values.dtype == object:
        return pa.array(list(values), type=pa.string())
    return pa.array(values)


def build_zoo(folder: Path, names: list[str] | None = None, workers: int = 1) -> list[ZooCase]:
    """Build the named scenarios (all by default) into `folder`, in `workers` processes (each
    scenario seeds itself, so where it is built does not change it)."""
    unknown = sorted(set(names or []) - set(SCENARIOS))
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; valid names are {list(SCENARIOS)}")
    chosen = list(names) if names else list(SCENARIOS)
    return map_in_processes(_build_named, [(n, Path(folder)) for n in chosen], workers,
                slow_first=[SCENARIOS[n].shape != "mlp" for n in chosen])


def audit_zoo(cases: list[ZooCase], seed: int = 0, workers: int = 1) -> dict[str, Any]:
    """Every case audited as built (all probes, the default budget) under `seed`, in `workers`
    processes: {name: CaseReport}. The suite and the stability benchmark use it; a fleet runs
    on Ray (`audit run`)."""
    return audit_zoo_seeds(cases, (seed,), workers)[seed]


def audit_zoo_seeds(cases: list[ZooCase], seeds: tuple[int, ...],
                    workers: int = 1) -> dict[int, dict[str, Any]]:
    """`audit_zoo` under several seeds at once (one pool for all): {seed: {name: report}}."""
    from audit.spec import CaseSpec

    pairs = [(seed, case) for seed in seeds for case in cases]
    specs = [(CaseSpec(**case.spec_fields(), seed=seed),) for seed, case in pairs]
    reports = map_in_processes(_audit, specs, workers,
                               slow_first=[c.shape != "mlp" for _, c in pairs])
    out: dict[int, dict[str, Any]] = {seed: {} for seed in seeds}
    for (seed, case), report in zip(pairs, reports, strict=True):
        out[seed][case.name] = report
    return out


def _build_named(name: str, folder: Path) -> ZooCase:
    return build_scenario(SCENARIOS[name], folder)


def _audit(spec: Any) -> Any:
    from audit.engine import audit_case

    return audit_case(spec)


def map_in_processes(fn: Callable[..., Any], calls: list[tuple[Any, ...]], workers: int,
         slow_first: list[bool] | None = None) -> list[Any]:
    """`fn(*args)` for every call, results in the calls' order: here, or spread over
    `workers` fresh processes (spawned, so none inherits this one's TensorFlow state), the
    calls marked slow handed out first so that no worker ends alone on a long one."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(*args) for args in calls]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    slow = slow_first or [False] * len(calls)
    order = sorted(range(len(calls)), key=lambda i: not slow[i])
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=context,
                             initializer=_one_thread_each) as pool:
        done = list(pool.map(fn, *zip(*(calls[i] for i in order), strict=True)))
    results: list[Any] = [None] * len(calls)
    for i, result in zip(order, done, strict=True):
        results[i] = result
    return results


def _one_thread_each() -> None:
    """A pool worker computes on one thread (set before TensorFlow or numpy's BLAS start):
    the workers share the cores, and tiny models gain nothing from more threads."""
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"


def write_tiny_case(folder: Path) -> tuple[Path, Path]:
    """The cheapest real case: a 3-feature Dense regression (SGD, never fitted) and 64 rows of
    its data, for fleet tests and the scheduler benchmark, where the probes are not the point."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([1.0, 2.0, -1.0], dtype="float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.save(folder / "tiny.keras")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}),
                   folder / "tiny.parquet")
    return folder / "tiny.keras", folder / "tiny.parquet"


def covered_faults() -> set[str]:
    """Cause codes with at least one scenario (the tests check every cause is covered)."""
    return ({s.expected_fault for s in SCENARIOS.values() if s.expected_fault}
            & set(faults.CAUSE_CODES))


#: confidence bins of the calibration table (lower edges; the last bin includes 1.0)
CONFIDENCE_BINS = (0.0, 0.4, 0.6, 0.8)


def finding_is_right(scenario: Scenario, fault: str) -> bool:
    """A finding is right when it names the scenario's fault (or a two-change bug's other
    fault); on a healthy scenario no finding is right."""
    return fault in {scenario.expected_fault, scenario.contributing} - {None}


def calibration(findings: dict[str, list[tuple[str, float]]]) -> list[dict[str, Any]]:
    """Per confidence bin: how many findings (scenario -> [(fault, confidence)]) and the share
    that are right."""
    rows = []
    edges = [*CONFIDENCE_BINS, 1.0 + 1e-9]
    for low, high in itertools.pairwise(edges):
        hits = [finding_is_right(SCENARIOS[name], fault)
                for name, found in findings.items() for fault, conf in found
                if low <= conf < high]
        rows.append({"bin": f"[{low:.1f}, {min(high, 1.0):.1f}{']' if high > 1 else ')'}",
                     "low": low, "findings": len(hits),
                     "right": sum(hits),
                     "accuracy": sum(hits) / len(hits) if hits else float("nan")})
    return rows
