"""A fleet worker imports Keras without the `tf.keras`-shaped namespace it never uses, and
everything still works: training, `tf.keras`, the engine. Run in a fresh process, as a Ray
worker starts."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from audit.models.imports import defer_keras_compat_namespace
assert defer_keras_compat_namespace()
import numpy as np
import tensorflow as tf
import keras
import audit.engine
assert "keras._tf_keras.keras" not in sys.modules, "the namespace loaded at import"
assert "tf_keras" not in sys.modules, "Keras 2 imported without a Keras 2 model"
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile("adam", "mse")
history = model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=2, verbose=0)
assert len(history.history["loss"]) == 2
assert tf.keras.layers.Dense is keras.layers.Dense  # loads the namespace on first use
assert "keras._tf_keras.keras" in sys.modules
assert not defer_keras_compat_namespace()  # Keras imported: nothing to do
print("ok")
"""


def test_a_worker_imports_keras_without_its_compat_namespace_and_all_still_works() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
