"""One home for the Keras vocabularies the probes share: loss families and their aliases,
optimizer families and their typical learning rates, activation families, default
initializers, and the small model introspection the probes need (activation names, weighted
layers). Each list lives here once, so the probes cannot drift apart.

No TensorFlow import: everything reads names and layer attributes.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ADAM_LIKE_OPTIMIZERS",
    "BINARY_LOSSES",
    "CATEGORICAL_LOSSES",
    "DEFAULT_KERNEL_INITS",
    "REGRESSION_LOSSES",
    "RELU_LIKE",
    "SATURATING",
    "TYPICAL_LR",
    "activation_name",
    "canonical_loss",
    "head_index",
    "hidden_activations",
    "is_recurrent",
    "nonsaturating_swap",
    "typical_lr",
    "weighted_layers",
]

REGRESSION_LOSSES = frozenset({"mse", "mae", "huber", "log_cosh", "msle", "mape"})
BINARY_LOSSES = frozenset({"binary_crossentropy", "hinge"})
CATEGORICAL_LOSSES = frozenset({"categorical_crossentropy", "sparse_categorical_crossentropy"})

#: activations with flat tails, where units saturate and gradients vanish
SATURATING = frozenset({"sigmoid", "tanh", "hard_sigmoid", "softsign"})
RELU_LIKE = frozenset({"relu", "relu6"})

#: the learning rate each optimizer family is usually run at
TYPICAL_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "nadam": 1e-3,
              "adamax": 2e-3, "adagrad": 1e-2, "adadelta": 1.0, "ftrl": 1e-2, "lion": 1e-4}
#: optimizer families that adapt each weight's step with a running average of its squared
#: gradients, as Adam does: Adam offers them nothing but another rate. Plain SGD, and Adagrad,
#: Adadelta and FTRL (whose steps only shrink; FTRL was made for sparse linear models) are not.
ADAM_LIKE_OPTIMIZERS = frozenset({"adam", "adamw", "nadam", "adamax", "rmsprop", "lion"})

#: Keras' usual kernel initializers (class names, lowercase, no underscores)
DEFAULT_KERNEL_INITS = frozenset({"glorotuniform", "glorotnormal", "heuniform", "henormal",
                                  "lecununiform", "lecunnormal", "orthogonal",
                                  "variancescaling"})


def typical_lr(optimizer: str) -> float:
    return TYPICAL_LR.get(optimizer, 1e-3)


LOSS_ALIASES = {
    "mean_squared_error": "mse",
    "meansquarederror": "mse",
    "mean_absolute_error": "mae",
    "meanabsoluteerror": "mae",
    "mean_squared_logarithmic_error": "msle",
    "mean_absolute_percentage_error": "mape",
    "binarycrossentropy": "binary_crossentropy",
    "binaryfocalcrossentropy": "binary_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "huber_loss": "huber",
    "logcosh": "log_cosh",
    "hinge": "hinge",
    "squared_hinge": "hinge",
    "squaredhinge": "hinge",
}


def canonical_loss(name: str) -> str:
    """`mean_squared_error`, `MeanSquaredError` and `mse` are all `mse`."""
    key = re.sub(r"[^a-z_]", "", name.lower())
    return LOSS_ALIASES.get(key, LOSS_ALIASES.get(key.replace("_", ""), key))


def activation_name(layer: Any) -> str | None:
    """The name of a layer's activation function, or None when it has none."""
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name.lower()


def weighted_layers(model: Any) -> list[Any]:
    """The layers that train (a `Normalization` or a lookup has no trainable weights)."""
    return [layer for layer in model.layers if layer.trainable_weights]


#: layers that only apply an activation (a Dense before one is not linear, whatever its own)
ACTIVATION_LAYERS = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"})
#: the ReLU family's own units, which a non-saturating change turns into LeakyReLU
RELU_TO_LEAKY = frozenset({"relu", "relu6"})
LEAKY = frozenset({"leaky_relu"})


def head_index(model: Any) -> int:
    """The index in `model.layers` of the last layer that trains (the head); what follows it
    (an `Activation`, say) belongs to the head too."""
    trained = [i for i, layer in enumerate(model.layers) if layer.trainable_weights]
    return trained[-1] if trained else len(model.layers)


def hidden_activations(model: Any) -> list[tuple[Any, str]]:
    """Each hidden layer that applies an activation, with its name, in model order: layers
    before the head with an `activation` (Dense, conv, an `Activation` layer), recurrent
    layers left out (their gates are their design). A layer whose own activation is linear
    but whose output an activation layer reads (before the next layer that trains) is left out
    too: that layer is the activation."""
    layers = model.layers[:head_index(model)]
    out: list[tuple[Any, str]] = []
    for i, layer in enumerate(layers):
        name = activation_name(layer)
        if name is None or is_recurrent(layer):
            continue
        if name == "linear" and layer.trainable_weights:
            after = []
            for nxt in layers[i + 1:]:
                if nxt.trainable_weights:
                    break
                after.append(nxt)
            if any(type(a).__name__ in ACTIVATION_LAYERS for a in after):
                continue
        out.append((layer, name))
    return out


def nonsaturating_swap(model: Any) -> tuple[tuple[str, str], ...]:
    """The hidden activations a non-saturating change sets, as (layer, activation): ReLU units
    become LeakyReLU; every other hidden activation Keras ships (sigmoid, tanh, hard_sigmoid,
    softsign, exponential, softplus, elu, selu, gelu, silu, softmax, a linear stack, ...)
    becomes ReLU (AUTOTRAINER's `relu_1` and `leaky_3` repairs)."""
    swap = []
    for layer, name in hidden_activations(model):
        if name in LEAKY:
            continue
        swap.append((layer.name, "leaky_relu" if name in RELU_TO_LEAKY else "relu"))
    return tuple(swap)


def is_recurrent(layer: Any) -> bool:
    """An RNN layer (LSTM, GRU, SimpleRNN): its tanh/sigmoid gates are its design."""
    return hasattr(layer, "cell")


#: the layer config keys of weight and output penalties, and of dropout rates
REGULARIZER_KEYS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                    "recurrent_regularizer", "depthwise_regularizer", "pointwise_regularizer")
DROPOUT_KEYS = ("dropout", "recurrent_dropout")


def penalty_factor(regularizer: Any) -> float:
    """The strength of a Keras regularizer: its l1 + l2 factors (0 for none or an unknown
    kind, whose config names no factor)."""
    if regularizer is None:
        return 0.0
    config = regularizer.get_config() if hasattr(regularizer, "get_config") else {}
    return float(sum(v for k, v in config.items()
                     if k in ("l1", "l2") and isinstance(v, (int, float))))


def dropout_of(layer: Any) -> float:
    """The largest dropout rate a layer applies: a Dropout-family layer's `rate`, or an RNN's
    `dropout` / `recurrent_dropout`."""
    config = layer.get_config()
    rates = [config.get(k) or 0.0 for k in DROPOUT_KEYS]
    if "dropout" in type(layer).__name__.lower():
        rates.append(config.get("rate") or 0.0)
    return float(max(rates))


def regularization(model: Any) -> tuple[float, float]:
    """The strongest weight/activity penalty factor and the highest dropout rate anywhere in
    the model."""
    penalty, dropout = 0.0, 0.0
    for layer in model.layers:
        for key in REGULARIZER_KEYS:
            penalty = max(penalty, penalty_factor(getattr(layer, key, None)))
        dropout = max(dropout, dropout_of(layer))
    return penalty, dropout


def fitting_loss(task: str) -> tuple[str, int | None, str]:
    """The loss, head units (None = as many as targets/classes) and activation that fit a task."""
    if task == "regression":
        return "mse", None, "linear"
    if task == "binary":
        return "binary_crossentropy", 1, "sigmoid"
    return "sparse_categorical_crossentropy", None, "softmax"
