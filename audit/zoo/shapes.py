"""Production-shaped scenarios for the zoo: the model shapes and data layouts a real fleet has.

Each shape has a healthy model and at least one with a known fault, trained by ordinary Keras
code: a structured model with one named input per column and `Normalization`/`StringLookup`
inside (a string column in the Parquet), a small CNN on images stored as `fixed_size_list`
columns, an Embedding+LSTM text model on token sequences in an `.npz`, a Conv1D model on
multichannel sequences, a two-headed model audited per head, and `model.export()` SavedModels
with named inputs. Everything is tiny so the whole zoo still audits in the test suite.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CITIES = ["paris", "lyon", "nice", "lille", "brest"]


@dataclass
class Built:
    """What a scenario's build returns: the trained model and its dataset's columns.

    `columns` holds one array per column (2-D arrays become list columns in Parquet, or
    arrays of an `.npz`); `save_as` is "keras", "savedmodel" or a Keras 2 format
    (`audit.zoo.keras2_saved.SAVE_AS`); `output` names the audited head of a multi-output
    model; `inputs` maps model inputs to columns where names differ."""

    model: Any
    columns: dict[str, np.ndarray]
    label: str
    training: dict[str, Any]
    save_as: str = "keras"
    data_as: str = "parquet"
    output: str | None = None
    inputs: dict[str, str] | None = field(default=None)


def _fit(model: Any, x: Any, y: Any, optimizer: Any, loss: Any, epochs: int,
         batch_size: int = 32) -> dict[str, Any]:
    import tensorflow as tf

    model.compile(optimizer=optimizer, loss=loss)
    # as tensors: Keras' numpy adapter refuses string arrays
    model.fit(tf.nest.map_structure(tf.constant, x), y, epochs=epochs, batch_size=batch_size,
              verbose=0)
    return {"epochs": epochs, "batch_size": batch_size}


# ---------------------------------------------------------------- structured (dict inputs)


def _structured_data(n: int, seed: int) -> dict[str, np.ndarray]:
    """Churn-like rows: age and income on raw scales, a city name, churn from all three."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, n)
    income = rng.lognormal(10, 0.5, n)
    city = rng.choice(CITIES, size=n)
    city_effect = {"paris": 1.5, "lyon": -1.0, "nice": 0.5, "lille": -1.5, "brest": 0.0}
    logit = (0.08 * (age - 50) - 0.6 * (np.log(income) - 10)
             + np.array([city_effect[c] for c in city]) + rng.normal(0, 0.3, n))
    churn = (logit > 0).astype(np.int64)
    return {"age": age, "income": income, "city": city.astype(object), "churn": churn}


def _structured_model(columns: dict[str, np.ndarray]) -> Any:
    import keras

    age = keras.Input((1,), name="age")
    income = keras.Input((1,), name="income")
    city = keras.Input((1,), name="city", dtype="string")
    age_norm = keras.layers.Normalization(name="age_norm")
    age_norm.adapt(columns["age"].reshape(-1, 1))
    income_norm = keras.layers.Normalization(name="income_norm")
    income_norm.adapt(columns["income"].reshape(-1, 1))
    lookup = keras.layers.StringLookup(output_mode="one_hot", name="city_lookup")
    lookup.adapt(np.array(CITIES).reshape(-1, 1))
    merged = keras.layers.Concatenate()([age_norm(age), income_norm(income), lookup(city)])
    hidden = keras.layers.Dense(16, activation="relu")(merged)
    out = keras.layers.Dense(1, activation="sigmoid", name="churn")(hidden)
    return keras.Model({"age": age, "income": income, "city": city}, out)


def _structured_inputs(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"age": columns["age"].reshape(-1, 1).astype(np.float32),
            "income": columns["income"].reshape(-1, 1).astype(np.float32),
            "city": columns["city"].reshape(-1, 1)}


@functools.cache
def _structured_built(seed: int, optimizer: str, rate: float, epochs: int = 20,
                      rows: int = 800) -> Built:
    """Trained once per process for each setting: the export scenarios reuse the Keras one."""
    import keras

    columns = _structured_data(rows, seed=seed)
    model = _structured_model(columns)
    training = _fit(model, _structured_inputs(columns), columns["churn"],
                    {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[optimizer](rate),
                    "binary_crossentropy", epochs)
    return Built(model, columns, "churn", training)


def structured_healthy() -> Built:
    return _structured_built(21, "adam", 0.01)


def structured_lr_too_low() -> Built:
    return _structured_built(22, "adam", 1e-6)


# ---------------------------------------------------------------- images (CNN)


def _images(n: int, seed: int, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """8x8 gray images; the class is the quadrant holding a bright blob (4 classes)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0.2, 0.1, (n, 8, 8, 1))
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 4 * r + 1 : 4 * r + 3, 4 * q + 1 : 4 * q + 3, 0] += 0.8
    x = np.clip(x, 0, 1)
    return (x * 255 if raw else x).astype(np.float32), y.astype(np.int64)


def _cnn() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1), name="pixels"),
        keras.layers.Conv2D(4, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(4, activation="softmax"),
    ])


def _cnn_built(seed: int, optimizer: Any) -> Built:
    x, y = _images(800, seed=seed)
    model = _cnn()
    training = _fit(model, x, y, optimizer, "sparse_categorical_crossentropy", 10)
    return Built(model, {"pixels": x.reshape(len(x), -1), "label": y}, "label", training)


def cnn_healthy() -> Built:
    import keras

    return _cnn_built(31, keras.optimizers.Adam(0.01))


def cnn_lr_too_high() -> Built:
    import keras

    return _cnn_built(32, keras.optimizers.SGD(20.0))


# ---------------------------------------------------------------- text (Embedding + LSTM)

VOCAB, LENGTH = 40, 10


def _tokens(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded token sequences; positive when the 'good' token 7 outnumbers the 'bad' token 8."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, LENGTH + 1, n)
    x = np.zeros((n, LENGTH), dtype=np.int64)
    for i, k in enumerate(lengths):
        x[i, :k] = rng.integers(1, VOCAB, k)
    y = ((x == 7).sum(axis=1) > (x == 8).sum(axis=1)).astype(np.int64)
    return x, y


def _lstm() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((LENGTH,), dtype="int32", name="tokens"),
        keras.layers.Embedding(VOCAB, 8),
        keras.layers.LSTM(8),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def _lstm_built(seed: int, optimizer: Any) -> Built:
    x, y = _tokens(400, seed=seed)
    model = _lstm()
    training = _fit(model, x, y, optimizer, "binary_crossentropy", 15)
    return Built(model, {"tokens": x, "y": y}, "y", training, data_as="npz")


def text_lstm_healthy() -> Built:
    import keras

    return _lstm_built(41, keras.optimizers.Adam(0.02))


def text_lstm_lr_too_low() -> Built:
    import keras

    return _lstm_built(42, keras.optimizers.Adam(1e-6))


# ---------------------------------------------------------------- sequences (Conv1D)


def _sequences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-channel sequences of 16 steps; the target is the peak of a smoothed channel."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 16, 2)).astype(np.float32)
    smooth = (x[:, :-2, 0] + x[:, 1:-1, 0] + x[:, 2:, 0]) / 3
    y = smooth.max(axis=1) - 0.5 * x[:, :, 1].mean(axis=1)
    return x, y.astype(np.float32)


def _conv1d() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((16, 2), name="signal"),
        keras.layers.Conv1D(8, 3, activation="relu"),
        keras.layers.GlobalMaxPooling1D(),
        keras.layers.Dense(1),
    ])


def _conv1d_built(seed: int, target_scale: float, target_offset: float) -> Built:
    import keras

    x, y = _sequences(500, seed=seed)
    y = (y * target_scale + target_offset).astype(np.float32)
    model = _conv1d()
    training = _fit(model, x, y, keras.optimizers.Adam(0.01), "mse", 15)
    return Built(model, {"signal": x.reshape(len(x), -1), "y": y}, "y", training)


def seq_conv1d_healthy() -> Built:
    return _conv1d_built(51, 1.0, 0.0)


def seq_conv1d_unscaled_targets() -> Built:
    return _conv1d_built(52, 2000.0, 30000.0)


# ---------------------------------------------------------------- two heads


def _two_heads(columns: dict[str, np.ndarray]) -> Any:
    """A shared trunk over two named inputs; `score` is a regression head, `risk` a 3-class
    head wrongly built as one sigmoid unit under binary cross-entropy."""
    import keras

    usage = keras.Input((3,), name="usage")
    tenure = keras.Input((1,), name="tenure")
    trunk = keras.layers.Dense(16, activation="relu")(
        keras.layers.Concatenate()([usage, tenure]))
    score = keras.layers.Dense(1, name="score")(trunk)
    risk = keras.layers.Dense(1, activation="sigmoid", name="risk")(trunk)
    return keras.Model({"usage": usage, "tenure": tenure}, {"score": score, "risk": risk})


def _two_heads_built(output: str) -> Built:
    return dataclasses.replace(_two_heads_trained(), label=output, output=output)


@functools.cache
def _two_heads_trained() -> Built:
    """The two-headed model, trained once per process (each head is a scenario)."""
    import keras

    rng = np.random.default_rng(61)
    n = 600
    usage = rng.normal(0, 1, (n, 3)).astype(np.float32)
    tenure = rng.normal(0, 1, (n, 1)).astype(np.float32)
    score = (usage @ np.array([1.0, -0.5, 0.3]) + 0.8 * tenure[:, 0]
             + rng.normal(0, 0.1, n)).astype(np.float32)
    risk = np.digitize(usage[:, 0] - tenure[:, 0], [-0.7, 0.7]).astype(np.int64)
    columns = {"usage": usage, "tenure": tenure[:, 0], "score": score, "risk": risk}
    model = _two_heads(columns)
    training = _fit(model, {"usage": usage, "tenure": tenure},
                    {"score": score, "risk": risk.astype(np.float32)},
                    keras.optimizers.Adam(0.01), {"score": "mse", "risk": "binary_crossentropy"},
                    20)
    return Built(model, columns, "score", training)


def two_heads_score_healthy() -> Built:
    return _two_heads_built("score")


def two_heads_risk_loss_mismatch() -> Built:
    return _two_heads_built("risk")


# ---------------------------------------------------------------- exports (SavedModel)


def export_healthy() -> Built:
    return dataclasses.replace(structured_healthy(), save_as="savedmodel")


def export_flat() -> Built:
    """A structured model whose training diverged to a constant output, shipped as an export:
    no config to retrain from, so the audit can only say it is flat."""

    return dataclasses.replace(_structured_built(23, "sgd", 50.0, epochs=10, rows=1200),
                               save_as="savedmodel")
