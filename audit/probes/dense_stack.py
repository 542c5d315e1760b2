"""Whether a model is a plain stack of Dense layers, and its layers and activations if so.

Two paths read it: the probes' direct forward pass (`tfutil.direct_forward`, the very TF ops
`Dense.call` runs, without Keras' per-call bookkeeping) and the retrain probe's stacked
trainings (`retrain.ensemble`), which train many such stacks as one.
"""

from __future__ import annotations

import json
from typing import Any

_PLAIN_DENSE_ATTRIBUTES = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                           "kernel_constraint", "bias_constraint", "lora_enabled")


def dense_stack(model: Any) -> list[tuple[Any, Any, str]] | None:
    """The model as [(dense_layer, activation_fn, activation_key)], or None when it is not a
    plain Dense stack. The key names the activation (Activation layers after a Dense fold into
    it, e.g. "linear>relu")."""
    import keras

    if not isinstance(model, keras.Sequential) or len(model.inputs[0].shape) != 2:
        return None
    stack: list[tuple[Any, Any, str]] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            plain = not any(getattr(layer, k, None) for k in _PLAIN_DENSE_ATTRIBUTES)
            if not plain or layer.dtype_policy.name != "float32":
                return None
            stack.append((layer, layer.activation, activation_key(layer.activation)))
        elif isinstance(layer, keras.layers.Activation) and stack:
            previous, act, previous_key = stack[-1]
            stack[-1] = (previous, _compose(act, layer.activation),
                         f"{previous_key}>{activation_key(layer.activation)}")
        else:
            return None
    return stack or None


def activation_key(activation: Any) -> str:
    """A name for an activation; one Keras cannot serialize (a lambda) is only equal to
    itself."""
    import keras

    try:
        return json.dumps(keras.activations.serialize(activation), sort_keys=True, default=str)
    except Exception:
        return f"callable at {id(activation):#x}"


def _compose(first: Any, second: Any) -> Any:
    return lambda t: second(first(t))
