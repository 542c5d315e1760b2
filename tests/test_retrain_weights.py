"""Seeded starting weights for retrained clones, drawn without building a clone per seed."""

from __future__ import annotations

import numpy as np

from audit.probes.retrain import initial_weights


def _dense() -> object:
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(16, activation="tanh", bias_initializer="ones"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=5.0)),
    ])


def test_weights_follow_each_layers_initializer_and_seed() -> None:
    model = _dense()
    a, b, again = initial_weights(model, 1), initial_weights(model, 2), initial_weights(model, 1)
    assert [w.shape for w in a] == [tuple(v.shape) for v in model.weights]
    for wa, wagain in zip(a, again, strict=True):
        np.testing.assert_array_equal(wa, wagain)  # exact: the same seed draws the same start
    assert not np.allclose(a[0], b[0]) and not np.allclose(a[-2], b[-2])
    limit = np.sqrt(6 / (6 + 16))  # glorot_uniform for the first kernel
    assert np.abs(a[0]).max() <= limit and np.abs(a[0]).max() > 0.8 * limit
    np.testing.assert_array_equal(a[1], np.ones(16))  # exact: bias_initializer="ones"
    gamma, beta, mean, var = a[2:6]  # BatchNormalization's own initializers
    assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
    assert 3.5 < a[6].std() < 6.5  # RandomNormal(stddev=5)


def test_layers_without_named_initializers_fall_back_to_a_seeded_clone() -> None:
    """An LSTM's recurrent kernel is not `recurrent_kernel_initializer`: a clone draws it."""
    import keras

    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    a, b = initial_weights(model, 1), initial_weights(model, 1)
    other = initial_weights(model, 2)
    assert [w.shape for w in a] == [tuple(v.shape) for v in model.weights]
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)  # exact: the same seed draws the same start
    assert not np.allclose(a[0], other[0])
