"""The plain MLP scenarios' builders: each trains a small Keras MLP the ordinary way
(`compile` + `fit`) on rows from `data` and returns `(model, x, y, training)`.

`mlp`, `opt` and the sizes and rates below are shared with benchmarks/zoo_fixes.py, which trains
these scenarios' fixes. The production-shaped builders are in `shapes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audit.zoo.datasets import (
    blobs,
    linear,
    shared_factor_regression,
    smooth_regression,
    wavy_regression,
    weak_signal_binary,
)


def mlp(d: int, hidden: list[int], out_units: int, out_act: str | None, act: str = "relu",
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


def opt(name: str, lr: float) -> Any:
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
    x, y = linear(200, 0, 1, 0.1)
    model = mlp(1, [], 1, None)
    return model, x, y, _fit(model, x, y, opt("adam", 0.01), "mse", 100)


def linear_lr_too_low() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = linear(200, 0, 1, 0.1)
    model = mlp(1, [], 1, None)
    return model, x, y, _fit(model, x, y, opt("adam", 1e-5), "mse", 100)


def linear_raw_inputs() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """The write-up's 'unscaled' case: measured, it trains fine (the audit must say healthy)."""
    x, y = linear(200, 0, 100, 10)
    model = mlp(1, [], 1, None)
    return model, x, y, _fit(model, x, y, opt("adam", 0.01), "mse", 100)


def binary_mlp_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = blobs(800, 8, 2, seed=1)
    model = mlp(8, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "binary_crossentropy", 20)


def multiclass_deep_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = blobs(1000, 12, 4, seed=2)
    model = mlp(12, [32, 32, 16], 4, "softmax")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "sparse_categorical_crossentropy",
                             20)


def regression_lr_too_high() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = smooth_regression(800, 6, seed=3)
    model = mlp(6, [32, 16], 1, None)
    return model, x, y, _fit(model, x, y, opt("sgd", 3.0), "mse", 20)


def regression_unscaled_inputs() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Features on wildly different scales feeding tanh units: they saturate and stall."""
    x, y = smooth_regression(800, 5, seed=4)
    scales = np.array([1000.0, 1.0, 0.001, 50.0, 300.0], dtype=np.float32)
    offsets = np.array([5000.0, 0.0, 0.0, 200.0, -900.0], dtype=np.float32)
    model = mlp(5, [16, 16], 1, None, act="tanh")
    raw = x * scales + offsets
    return model, raw, y, _fit(model, raw, y, opt("adam", 1e-3), "mse", 20)


def regression_unscaled_targets() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = smooth_regression(800, 4, seed=5)
    y = (y * 3000 + 20000).astype(np.float32)
    model = mlp(4, [16], 1, None)
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "mse", 20)


def multiclass_loss_mismatch() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Binary cross-entropy and one sigmoid unit on a three-class problem."""
    x, y = blobs(900, 6, 3, seed=6)
    model = mlp(6, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "binary_crossentropy", 20)


def regression_saturated() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Sigmoid hidden units initialized with huge weights sit in their flat tails."""
    import keras

    x, y = smooth_regression(800, 8, seed=7)
    model = mlp(8, [8, 8], 1, None, act="sigmoid",
                 kernel_initializer=keras.initializers.RandomNormal(stddev=20.0, seed=7))
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "mse", 20)


def regression_dead_relu() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """A strongly negative bias init leaves every ReLU off for every input."""
    import keras

    x, y = smooth_regression(800, 6, seed=8)
    model = mlp(6, [32, 32], 1, None,
                 bias_initializer=keras.initializers.Constant(-8.0))
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "mse", 20)


def deep_vanishing() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Ten sigmoid layers under plain SGD: the first layers receive almost no gradient."""
    x, y = blobs(800, 8, 2, seed=9)
    model = mlp(8, [16] * 10, 1, "sigmoid", act="sigmoid")
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "binary_crossentropy", 20)


def deep_exploding() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Six ReLU layers initialized too large: activations and gradients blow up."""
    import keras

    x, y = smooth_regression(800, 8, seed=10)
    model = mlp(8, [32] * 6, 1, None,
                 kernel_initializer=keras.initializers.RandomNormal(stddev=1.5, seed=10))
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "mse", 20)


def binary_class_imbalance() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """3% positives that overlap the majority: plain training predicts the majority only."""
    x, y = blobs(1500, 6, 2, seed=11, sep=0.6, weights=[0.97, 0.03])
    model = mlp(6, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "binary_crossentropy", 20)


def regression_bad_data() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """5% of rows carry NaN cells; one NaN batch turns every weight into NaN."""
    x, y = smooth_regression(800, 5, seed=12)
    rng = np.random.default_rng(12)
    bad = rng.choice(len(x), size=40, replace=False)
    x[bad, rng.integers(0, 5, size=40)] = np.nan
    model = mlp(5, [16], 1, None)
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "mse", 10)


def multiclass_undertrained() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """A sound model and optimizer stopped after a single epoch."""
    x, y = blobs(600, 10, 5, seed=13, sep=1.5)
    model = mlp(10, [32], 5, "softmax")
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "sparse_categorical_crossentropy", 1)


def regression_optimizer_stalled() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Three sigmoid layers under plain SGD(0.01) sit on a plateau; Adam leaves it at once."""
    x, y = smooth_regression(800, 8, seed=14)
    model = mlp(8, [16] * 3, 1, None, act="sigmoid")
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "mse", 20)


def regression_sgd_too_brief() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Two faults at once: sigmoid layers under plain SGD (a plateau only an adaptive optimizer
    leaves quickly) and training stopped after two epochs (too short even for Adam)."""
    x, y = smooth_regression(800, 8, seed=15)
    model = mlp(8, [16] * 3, 1, None, act="sigmoid")
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "mse", 2)


def regression_raw_inputs_high_lr() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Two faults at once: raw inputs in the hundreds, and an SGD rate that diverges even on
    standardized inputs; the typical rate still diverges on the raw ones."""
    x, y = smooth_regression(800, 6, seed=16)
    scales = np.array([300.0, 50.0, 800.0, 120.0, 20.0, 500.0], dtype=np.float32)
    raw = x * scales + scales
    model = mlp(6, [32, 16], 1, None)
    return model, raw, y, _fit(model, raw, y, opt("sgd", 1.0), "mse", 20)


def _ids_divided(classes: int, scale: int,
                 seed: int) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Blobs of `classes` classes whose ids were divided by `scale` upstream, fit under sparse
    cross-entropy (which casts the labels to integers)."""
    x, y = blobs(800, 8, classes, seed=seed)
    model = mlp(8, [16], classes, "softmax")
    scaled = (y / scale).astype(np.float32)
    return model, x, scaled, _fit(model, x, scaled, opt("adam", 1e-3),
                                  "sparse_categorical_crossentropy", 20)


def multiclass_fraction_labels() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Class ids divided by 4 upstream (0, 0.25, 0.5, 0.75): sparse cross-entropy casts them
    to integers, so every label becomes class 0."""
    return _ids_divided(4, 4, seed=17)


def regression_softmax_layer() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """One activation swapped (DeepCrime's ACH): the first of four ReLU layers is a softmax.
    Its 64 outputs of about 1/64 starve the layers after it under SGD(0.01), which trains the
    all-ReLU twin well; putting its ReLU back restores the model, and so do what compensate
    (Adam, a higher rate)."""
    import keras

    x, y = smooth_regression(1000, 8, seed=5)
    layers = ((64, "softmax"), (64, "relu"), (32, "relu"), (16, "relu"))  # (units, activation)
    model = keras.Sequential([keras.Input((8,))] + [
        keras.layers.Dense(units, activation=act) for units, act in layers
    ] + [keras.layers.Dense(1)])
    return model, x, y, _fit(model, x, y, opt("sgd", 0.01), "mse", 30)


def multiclass_ids_over_255() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Class ids divided by 255 upstream, as pixel values are: every label lies within 0.04 of
    0, so sparse cross-entropy casts all ten classes to class 0."""
    return _ids_divided(10, 255, seed=23)


def multiclass_near_integer_labels() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Class ids stored as floats with round-off (2.999 for 3): the cast to integers moves
    half of every class into the class below."""
    x, y = blobs(800, 8, 4, seed=18)
    noise = np.random.default_rng(18).uniform(-0.01, 0.01, len(y))
    near = (y + noise).astype(np.float32)
    model = mlp(8, [16], 4, "softmax")
    return model, x, near, _fit(model, x, near, opt("adam", 1e-3),
                                "sparse_categorical_crossentropy", 20)


def binary_constant_label() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Every row labelled 1 (a filter upstream kept one class): nothing to learn."""
    x, _ = blobs(600, 6, 2, seed=19)
    y = np.ones(len(x), dtype=np.float32)
    model = mlp(6, [16], 1, "sigmoid")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "binary_crossentropy", 10)


#: the new scenarios' sizes and rates, shared with benchmarks/zoo_fixes.py, which trains their
#: fixes and "not enough" variants
SHARED_FACTOR_ROWS, SHARED_FACTOR_EPOCHS = 600, 20
WAVY_ROWS, WAVY_EPOCHS, WAVY_BATCH, WAVY_HIDDEN = 200, 200, 64, [16]
WEAK_ROWS, WEAK_EPOCHS, WEAK_HIDDEN = 600, 30, [8]


def _shared_factor_linear(lr: float) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = shared_factor_regression(SHARED_FACTOR_ROWS, seed=20)
    model = mlp(x.shape[1], [], 1, None)
    return model, x, y, _fit_repeated(model, x, y, opt("sgd", lr), "mse",
                                      SHARED_FACTOR_EPOCHS)


def linear_sgd_diverges() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Dense(1) under SGD(0.01) on 500 correlated, individually scaled features: diverges
    (and still does at 0.001); 1e-4 and 1e-5 fit."""
    return _shared_factor_linear(0.01)


def linear_sgd_small_rate_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    return _shared_factor_linear(1e-4)


def _wavy_rmsprop(lr: float) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    x, y = wavy_regression(WAVY_ROWS, seed=21)
    model = mlp(x.shape[1], WAVY_HIDDEN, 1, None)
    return model, x, y, _fit_repeated(model, x, y, opt("rmsprop", lr), "mse", WAVY_EPOCHS,
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
    model = mlp(x.shape[1], WEAK_HIDDEN, 1, "sigmoid")
    return model, x, y, _fit_repeated(model, x, y, opt("adam", 1e-3), "binary_crossentropy",
                                      WEAK_EPOCHS)


def binary_weak_signal_imbalanced() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """5% positives with a weak signal under plain cross-entropy: predicts the majority;
    balanced class weights recover most of the attainable skill."""
    return _weak_signal(0.05, seed=22)


def binary_weak_signal_balanced_healthy() -> tuple[Any, np.ndarray, np.ndarray,
                                                   dict[str, Any]]:
    """The same weak signal at 50/50: modest skill, but all the data allows."""
    return _weak_signal(0.5, seed=23)


def _regularized(penalty: float, dropout: float) -> tuple[Any, np.ndarray, np.ndarray,
                                                          dict[str, Any]]:
    """Two ReLU layers with an L2 kernel penalty (and dropout after each) under Adam on a
    smooth target of standardized inputs."""
    import keras

    x, y = smooth_regression(800, 6, seed=24)
    layers: list[Any] = [keras.Input((6,))]
    for units in (32, 32):
        layers.append(keras.layers.Dense(units, activation="relu",
                                         kernel_regularizer=keras.regularizers.L2(penalty)))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1))
    model = keras.Sequential(layers)
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "mse", 40)


def regression_over_regularized() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """An L2 factor of 3 on every hidden kernel: the penalty outweighs the fit and drives the
    weights, and the output, to a constant."""
    return _regularized(3.0, 0.0)


def regression_lightly_regularized_healthy() -> tuple[Any, np.ndarray, np.ndarray,
                                                      dict[str, Any]]:
    """The same network with a usual L2 factor (1e-4) and dropout 0.1: it fits."""
    return _regularized(1e-4, 0.1)


def _three_classes(relabelled: float) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Three well separated classes; `relabelled` of class 0's rows carry a label drawn at
    random from the other two classes before the model is trained."""
    x, y = blobs(1200, 6, 3, seed=25, sep=2.5)
    rng = np.random.default_rng(25)
    zero = np.flatnonzero(y == 0)
    moved = rng.choice(zero, size=int(relabelled * len(zero)), replace=False)
    y = y.copy()
    y[moved] = rng.integers(1, 3, size=len(moved))
    model = mlp(6, [16], 3, "softmax")
    return model, x, y, _fit(model, x, y, opt("adam", 1e-3), "sparse_categorical_crossentropy",
                             30)


def multiclass_noisy_labels() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """70% of class 0's rows relabelled at random: its count falls to a fifth of the others,
    which looks like an imbalance, but the rows themselves dispute their labels."""
    return _three_classes(0.7)


def multiclass_clean_labels_healthy() -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    return _three_classes(0.0)
