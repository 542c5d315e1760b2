"""A fleet worker imports Keras without what it never uses (the `tf.keras`-shaped namespace,
Keras' scikit-learn wrappers, matplotlib's pyplot), and everything still works when it is
used: training, `tf.keras`, the wrappers, plotting, the engine, a probe that needs
scikit-learn. Run in a fresh process, as a Ray worker starts."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from audit.models.imports import DEFERRED, Deferred, defer_unused_imports
assert defer_unused_imports()
import numpy as np
import tensorflow as tf
import keras
import audit.engine
names = [name for _, name in DEFERRED]
assert all(isinstance(sys.modules[n], Deferred) for n in names), "a module loaded at import"
assert "keras._tf_keras.keras" not in sys.modules
assert "sklearn" not in sys.modules
assert "tf_keras" not in sys.modules, "Keras 2 imported without a Keras 2 model"
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile("adam", "mse")
history = model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=2, verbose=0)
assert len(history.history["loss"]) == 2
assert tf.keras.layers.Dense is keras.layers.Dense  # loads the namespace on first use
assert keras.wrappers.SKLearnClassifier.__name__ == "SKLearnClassifier"
assert "sklearn" in sys.modules
import matplotlib.pyplot as plt
assert callable(plt.figure) and not isinstance(sys.modules["matplotlib.pyplot"], Deferred)
from audit.probes.retrain.reference import linear_reference  # scikit-learn, as a case loads it
assert not defer_unused_imports()  # Keras imported: nothing to do
print("ok")
"""


def test_a_worker_imports_keras_without_what_it_never_uses_and_all_still_works() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
