"""Keras helpers the probes share: heads, losses, optimizers, label encodings, batched predict.

TensorFlow and Keras are imported inside functions so importing the probe registry stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from audit.models.vocab import activation_name
from audit.probes.dense_stack import dense_stack
from audit.probes.outcomes import Head
from audit.subject import Subject
from audit.subject.inputs import Feed, Inputs, feed_len, feed_take

PREDICT_CHUNK = 65536


def head_of(model: Any, from_logits: bool = False) -> Head:
    """The output head of `model` (units and activation of its last layer)."""
    shape = model.outputs[0].shape
    units = int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1
    activation = activation_name(model.layers[-1]) if model.layers else None
    activation = activation or "linear"
    return Head(units=units, activation=activation,
                from_logits=from_logits and activation not in ("sigmoid", "softmax"))


def subject_head(subject: Subject) -> Head:
    return head_of(subject.model, subject.training.from_logits)


def direct_forward(model: Any) -> Callable[[Any], Any] | None:
    """For a plain Dense stack, its forward pass as bare TF ops: the very ops `Dense.call` runs
    (bitwise the same outputs) without Keras' per-layer call bookkeeping, which on small models
    costs several times the arithmetic. None for any other model."""
    import tensorflow as tf


    stack = dense_stack(model)
    if stack is None:
        return None

    def forward(h: Any) -> Any:
        for layer, activation, _ in stack:
            h = tf.matmul(h, layer.kernel.value)
            if layer.use_bias:
                h = tf.add(h, layer.bias.value)
            h = activation(h)
        return h

    return forward


def to_tensors(feed: Feed) -> Any:
    """A feed (one array, a list or a dict of arrays) as TF tensors of the same structure."""
    import tensorflow as tf

    return tf.nest.map_structure(tf.constant, feed)


def predict(model: Any, x: Inputs | Feed, chunk: int = PREDICT_CHUNK) -> np.ndarray:
    """Model outputs for `x` (typed inputs or the feed they give) in a few large calls (never
    one call per sample)."""
    feed = x.feed() if isinstance(x, Inputs) else x
    single = isinstance(feed, np.ndarray)
    forward = direct_forward(model) if single and feed.dtype == np.float32 else None
    outputs = []
    for start in range(0, feed_len(feed), chunk):
        rows = to_tensors(feed_take(feed, slice(start, start + chunk)))
        out = forward(rows) if forward is not None else model(rows, training=False)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        outputs.append(np.asarray(out, dtype=np.float32).reshape(len(out), -1))
    return np.concatenate(outputs, axis=0) if outputs else np.zeros((0, 1), np.float32)


def carry_state(source: Any, clone: Any) -> None:
    """Give `clone` the state training does not learn: lookup vocabularies and adapted
    statistics (`Normalization` mean and variance): a retrained clone keeps the model's own
    preprocessing, as a fresh `fit` would."""
    originals = {layer.name: layer for layer in source.layers}
    for layer in clone.layers:
        original = originals.get(layer.name)
        if original is None or type(original) is not type(layer):
            continue
        if hasattr(original, "get_vocabulary") and hasattr(layer, "set_vocabulary"):
            vocabulary = original.get_vocabulary()
            if vocabulary != layer.get_vocabulary():
                layer.set_vocabulary(vocabulary)
        carried = False
        for mine, theirs in zip(layer.weights, original.weights, strict=False):
            if not mine.trainable and initializer_of(layer, mine) is None \
                    and tuple(mine.shape) == tuple(theirs.shape):
                mine.assign(theirs)
                carried = True
        if carried and hasattr(layer, "finalize_state"):
            layer.finalize_state()  # Normalization computes its mean/variance tensors here


def initializer_of(layer: Any, variable: Any) -> Any:
    """The initializer a layer names for one of its weights (`<weight>_initializer`), if any."""
    init = getattr(layer, f"{variable.name}_initializer", None)
    return init if callable(init) else None


def clone_with_state(model: Any) -> Any:
    """`keras.models.clone_model` that keeps the model's preprocessing state (see
    `carry_state`): a plain clone has empty lookup tables and zero normalization statistics."""
    import keras

    clone = keras.models.clone_model(model)
    carry_state(model, clone)
    return clone


def make_loss(name: str, from_logits: bool = False) -> Any:
    """A Keras loss object for a canonical loss name."""
    import keras

    losses = keras.losses
    table = {
        "mse": losses.MeanSquaredError,
        "mae": losses.MeanAbsoluteError,
        "huber": losses.Huber,
        "log_cosh": losses.LogCosh,
        "msle": losses.MeanSquaredLogarithmicError,
        "mape": losses.MeanAbsolutePercentageError,
        "hinge": losses.Hinge,
    }
    if name in table:
        return table[name]()
    if name == "binary_crossentropy":
        return losses.BinaryCrossentropy(from_logits=from_logits)
    if name == "categorical_crossentropy":
        return losses.CategoricalCrossentropy(from_logits=from_logits)
    if name == "sparse_categorical_crossentropy":
        return losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return losses.get(name)


def make_optimizer(
    name: str,
    learning_rate: float,
    clipnorm: float | None = None,
    extra: tuple[tuple[str, Any], ...] = (),
) -> Any:
    """A fresh Keras optimizer of the given family (with the saved momentum etc. in `extra`)."""
    import keras

    kwargs: dict[str, Any] = {**dict(extra), "learning_rate": learning_rate}
    if clipnorm is not None:
        kwargs["clipnorm"] = clipnorm
    try:
        return keras.optimizers.get({"class_name": name, "config": kwargs})
    except ValueError:
        return keras.optimizers.SGD(**kwargs)


def encode_targets(y: np.ndarray, task: str, loss: str, units: int) -> np.ndarray:
    """Labels in the form `loss` expects for a head of `units` outputs (as the user fed them)."""
    if task == "regression":
        return y.reshape(len(y), -1).astype(np.float32)
    classes = y.astype(np.int64)
    if loss == "sparse_categorical_crossentropy":
        return classes.reshape(-1, 1)
    if units == 1:
        return classes.reshape(-1, 1).astype(np.float32)
    return np.eye(units, dtype=np.float32)[np.clip(classes, 0, units - 1)]


