"""Keras 2 scenarios for the zoo: models trained and saved by `tf_keras` (TensorFlow's own Keras
up to TF 2.15), as a platform's older fleet holds them: SavedModel folders written by
`model.save("dir")` and `.h5` files Keras 3 cannot read. The audit rebuilds them in Keras 3
(`audit/models/keras2.py`), so their faults are confirmed by retraining like any other model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from audit.zoo.shapes import Built

#: how a Keras 2 scenario is saved -> the model file's suffix
SAVE_AS = {"keras2-savedmodel": ".savedmodel", "keras2-h5": ".h5"}


def save(model: Any, folder: Path, name: str, save_as: str) -> Path:
    """Save a `tf_keras` model as Keras 2 did: a SavedModel folder or an `.h5` file."""
    path = folder / f"{name}{SAVE_AS[save_as]}"
    model.save(str(path), save_format="tf" if save_as == "keras2-savedmodel" else "h5")
    return path


def _linear_rows(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """`y = 2x + 1 + noise`, x in 0..1 (the data of the zoo's `linear_*` scenarios)."""
    rng = np.random.default_rng(42)
    x = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    return x, (2 * x[:, 0] + 1 + rng.normal(0, 0.1, n)).astype(np.float32)


def _lr_too_low(save_as: str) -> Built:
    """Dense(1) under Adam(1e-5) for 100 epochs, in Keras 2: it barely moves from its
    initialization. The epochs run as one pass over the rows repeated 100 times (the same
    optimizer steps without Keras' per-epoch overhead)."""
    import tf_keras

    tf_keras.utils.set_random_seed(42)
    x, y = _linear_rows()
    model = tf_keras.Sequential([tf_keras.Input((1,)), tf_keras.layers.Dense(1)])
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-5), loss="mse")
    model.fit(np.tile(x, (100, 1)), np.tile(y, 100), epochs=1, batch_size=32, verbose=0)
    return Built(model, {"x0": x[:, 0], "y": y}, "y", {"epochs": 100, "batch_size": 32},
                 save_as=save_as)


def keras2_savedmodel_lr_too_low() -> Built:
    return _lr_too_low("keras2-savedmodel")


def keras2_h5_lr_too_low() -> Built:
    return _lr_too_low("keras2-h5")


def keras2_savedmodel_healthy() -> Built:
    """Two Gaussian blobs in 8 features; Dense + BatchNormalization + Dropout (the layers whose
    configs Keras 2 and 3 spell differently), Adam(1e-3), 20 epochs, in Keras 2."""
    import tf_keras

    tf_keras.utils.set_random_seed(42)
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 2.0, (2, 8))
    y = rng.integers(0, 2, 800)
    x = (centers[y] + rng.normal(0, 1.0, (800, 8))).astype(np.float32)
    layers = tf_keras.layers
    model = tf_keras.Sequential([tf_keras.Input((8,)), layers.Dense(16, activation="relu"),
                                 layers.BatchNormalization(), layers.Dropout(0.2),
                                 layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y.astype(np.float32), epochs=20, batch_size=32, verbose=0)
    columns = {**{f"x{i}": x[:, i] for i in range(8)}, "y": y.astype(np.int64)}
    return Built(model, columns, "y", {"epochs": 20, "batch_size": 32},
                 save_as="keras2-savedmodel")
