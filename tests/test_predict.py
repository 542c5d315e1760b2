"""`predict` runs plain Dense stacks as bare TF ops: the outputs must be model(x)'s.

One call over the same batch is compared bit for bit (same shapes, same kernels). A chunked call
is compared with a tolerance: matrix-multiply kernels pick their blocking by batch size and CPU,
so rows may differ in the last bit between a 64-row chunk and a 300-row batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from audit.probes.tfutil import direct_forward, predict


def _stacks() -> dict[str, object]:
    import keras

    keras.utils.set_random_seed(3)
    L = keras.layers
    return {
        "tanh_relu_sigmoid": keras.Sequential([keras.Input((5,)), L.Dense(7, activation="tanh"),
                                               L.Dense(6, activation="relu"),
                                               L.Dense(1, activation="sigmoid")]),
        "activation_layers_no_bias": keras.Sequential([
            keras.Input((5,)), L.Dense(8, use_bias=False), L.Activation("elu"),
            L.Dense(4), L.Activation("softmax")]),
        "leaky_linear": keras.Sequential([keras.Input((5,)), L.Dense(9, activation="leaky_relu"),
                                          L.Dense(3)]),
    }


@pytest.mark.parametrize("name", ["tanh_relu_sigmoid", "activation_layers_no_bias",
                                  "leaky_linear"])
def test_dense_stacks_take_the_direct_path_with_identical_outputs(name: str) -> None:
    model = _stacks()[name]
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    assert direct_forward(model) is not None
    whole = np.asarray(model(x, training=False))
    # exact: the same ops on the same (300, 5) batch; only the Keras layer plumbing differs
    np.testing.assert_array_equal(predict(model, x), whole)  # exact: see above
    chunked = predict(model, x, chunk=64)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_other_models_fall_back_to_the_keras_call() -> None:
    import keras

    keras.utils.set_random_seed(4)
    regularized = keras.Sequential([keras.Input((5,)),
                                    keras.layers.Dense(4, kernel_regularizer="l2"),
                                    keras.layers.Dense(1)])
    dropout = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                                keras.layers.Dropout(0.5), keras.layers.Dense(1)])
    inputs = keras.Input((5,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.random.default_rng(1).normal(size=(50, 5)).astype(np.float32)
    for model in (regularized, dropout, functional):
        assert direct_forward(model) is None
        # exact: the fallback is model(x) itself, on the same batch
        expected = np.asarray(model(x, training=False))
        np.testing.assert_array_equal(predict(model, x), expected)  # exact: see above
