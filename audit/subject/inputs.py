"""Typed, named model inputs: what every probe and the trainer feed a model.

A production Keras model rarely takes one float matrix. It takes one input per column (a
`keras.Input(name=...)` each, `Normalization` or `StringLookup` inside), an image, a token
sequence, or several of these. `Inputs` holds one array per model input, in the model's order,
each with a kind:

- `numeric`: float features, one or more columns (shape `(n, d)` or `(n,)`);
- `categorical`: strings or integer ids of one column (the model looks them up itself);
- `tokens`: integer sequences fed to an `Embedding` (shape `(n, length)`);
- `tensor`: an image or any other float array of rank 2 or more per row.

"One feature" in the probes is one numeric column or one whole named input, never one pixel or
token position (`Inputs.features`). `feed()` gives the structure the model's call expects
(one array, a list, or a dict by input name). No TensorFlow import at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from audit.io.tabular import ColumnHint

__all__ = [
    "Feature",
    "Feed",
    "InputArray",
    "InputKind",
    "Inputs",
    "ModelInput",
    "call_inputs",
    "column_hints",
    "feed_layout",
    "feed_len",
    "feed_signature",
    "feed_take",
    "model_inputs",
]

InputKind = Literal["numeric", "categorical", "tokens", "tensor"]
Feed = Any  # np.ndarray | list[np.ndarray] | dict[str, np.ndarray]: what `model(...)` takes

#: layers that scale their input themselves (a standardization counterfactual cannot help)
SCALING_LAYERS = frozenset({"Normalization", "BatchNormalization", "LayerNormalization",
                            "Rescaling", "Discretization"})
#: layers that read ids or strings as categories
LOOKUP_LAYERS = frozenset({"StringLookup", "IntegerLookup", "CategoryEncoding", "Hashing"})


@dataclass(frozen=True)
class ModelInput:
    """What one input of a Keras model expects, read off the model."""

    name: str
    shape: tuple[int | None, ...]  # per row (without the batch axis)
    dtype: str
    consumers: tuple[Any, ...]  # the layers that read this input directly

    @property
    def consumer_types(self) -> set[str]:
        return {type(layer).__name__ for layer in self.consumers}

    @property
    def kind(self) -> InputKind:
        """The input's kind from its dtype, shape and the layers that read it."""
        types = self.consumer_types
        per_row = int(np.prod([d or 1 for d in self.shape])) if self.shape else 1
        if self.dtype == "string" or types & LOOKUP_LAYERS:
            return "categorical"
        if "Embedding" in types or self.dtype.startswith("int"):
            return "tokens" if per_row > 1 else "categorical"
        if len(self.shape) >= 2:
            return "tensor"
        return "numeric"

    @property
    def opaque(self) -> bool:
        """True when a SavedModel signature reads this input: what it does inside is unseen."""
        return any(cls.__name__ == "TFSMLayer" for layer in self.consumers
                   for cls in type(layer).__mro__)

    @property
    def normalized(self) -> bool | None:
        """True when the model scales this input itself (a `Normalization` layer, a leading
        `BatchNormalization`, `Rescaling`) or reads it as categories; None when that cannot be
        seen (a SavedModel)."""
        if self.opaque:
            return None
        return bool(self.consumer_types & (SCALING_LAYERS | LOOKUP_LAYERS))

    def vocabulary(self) -> set[Any] | None:
        """The values a lookup layer reading this input knows, or None without one."""
        for layer in self.consumers:
            if type(layer).__name__ in ("StringLookup", "IntegerLookup"):
                vocab = layer.get_vocabulary(include_special_tokens=False)
                return {v.decode() if isinstance(v, bytes) else v for v in vocab}
        return None

    def embedding_size(self) -> int | None:
        """`input_dim` of an `Embedding` reading this input: ids must be below it."""
        for layer in self.consumers:
            if type(layer).__name__ == "Embedding":
                return int(layer.input_dim)
        return None


def _consumers(model: Any, tensor: Any) -> tuple[Any, ...]:
    """Layers of `model` that take `tensor` as a direct input (through a cast they see it too)."""
    found = []
    for layer in model.layers:
        for node in getattr(layer, "_inbound_nodes", []):
            if any(t is tensor for t in getattr(node, "input_tensors", ())):
                found.append(layer)
                break
    if not found and model.layers and type(model).__name__ == "Sequential":
        found.append(model.layers[0])
    return tuple(found)


def model_inputs(model: Any) -> list[ModelInput]:
    """Every input of `model`, in the order `model.inputs` lists them."""
    out = []
    for tensor in model.inputs:
        shape = tuple(None if d is None else int(d) for d in tensor.shape[1:])
        dtype = str(getattr(tensor, "dtype", "float32"))
        layer = getattr(tensor, "_keras_history", (None,))[0]
        name = getattr(layer, "name", None) or tensor.name
        out.append(ModelInput(name, shape, dtype, _consumers(model, tensor)))
    return out


def column_hints(declared: list[ModelInput],
                 plan: dict[str, list[str]]) -> dict[str, ColumnHint]:
    """What each column's model input takes as tf.Example value lists, for the TFRecord
    reader: text for a string input, int64 ids for an id input, numbers (float or int64) for
    a numeric or tensor one, and for an image input (rank 3) also encoded images."""
    hints = {}
    for d in declared:
        if d.dtype == "string":
            accepts = {"bytes_list"}
        elif d.kind in ("categorical", "tokens"):
            accepts = {"int64_list"}
        else:
            accepts = {"float_list", "int64_list"}
        image = d.kind == "tensor" and len(d.shape) == 3
        what = f"model input {d.name!r} ({d.kind}, {d.dtype}, shape {(None, *d.shape)})"
        for column in plan.get(d.name, []):
            hints[column] = ColumnHint(frozenset(accepts | ({"bytes_list"} if image else set())),
                                       image, what)
    return hints


def call_inputs(model: Any) -> Any:
    """The model's inputs as its call takes them (a dict by name, or the list), for building
    a model on the same inputs (a tap on hidden layers, one head of several)."""
    struct = getattr(model, "_inputs_struct", None)
    return struct if isinstance(struct, dict) else model.inputs


def feed_layout(model: Any) -> Literal["single", "list", "dict"]:
    """How the model's call wants its inputs: one array, a list, or a dict by input name."""
    if len(model.inputs) == 1:
        return "single"
    return "dict" if isinstance(getattr(model, "_inputs_struct", None), dict) else "list"


@dataclass(frozen=True)
class Feature:
    """One feature for the probes: one numeric column, or one whole named input."""

    name: str
    input: str
    column: int | None  # position in a numeric matrix input; None: the whole input


@dataclass(frozen=True)
class InputArray:
    """The data of one model input: its values (rows first), kind and source columns."""

    name: str
    kind: InputKind
    values: np.ndarray
    columns: tuple[str, ...]
    normalized: bool | None = False  # the model scales it itself (None: cannot be seen)

    @property
    def is_float(self) -> bool:
        return self.kind in ("numeric", "tensor")

    def finite_rows(self) -> np.ndarray:
        """Rows whose values are all present (finite numbers; non-missing categories)."""
        n = len(self.values)
        if self.is_float:
            return np.all(np.isfinite(self.values.reshape(n, -1)), axis=1)
        if self.values.dtype == object:
            flat = self.values.reshape(n, -1)
            return np.array([all(v is not None for v in row) for row in flat], dtype=bool)
        return np.ones(n, dtype=bool)


@dataclass(frozen=True)
class Inputs:
    """One `InputArray` per model input, in the model's order, all with the same rows."""

    arrays: tuple[InputArray, ...]
    structure: Literal["single", "list", "dict"] = "single"

    def __post_init__(self) -> None:
        lengths = {len(a.values) for a in self.arrays}
        if len(lengths) > 1:
            raise ValueError(f"inputs have different row counts: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.arrays[0].values) if self.arrays else 0

    def __getitem__(self, name: str) -> InputArray:
        for array in self.arrays:
            if array.name == name:
                return array
        raise KeyError(f"no input {name!r}; inputs are {self.names}")

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.arrays]

    @property
    def columns(self) -> list[str]:
        """Every data column that feeds the model, in input order."""
        return [c for a in self.arrays for c in a.columns]

    @property
    def features(self) -> list[Feature]:
        """Features one at a time: each column of a numeric matrix, each other input whole."""
        out = []
        for array in self.arrays:
            per_row = array.values.shape[1:]
            if array.kind == "numeric" and len(per_row) == 1 and per_row[0] > 1:
                names = (array.columns if len(array.columns) == per_row[0]
                         else [f"{array.name}[{j}]" for j in range(per_row[0])])
                out.extend(Feature(str(c), array.name, j) for j, c in enumerate(names))
            else:
                label = array.columns[0] if len(array.columns) == 1 else array.name
                out.append(Feature(label, array.name, None))
        return out

    def take(self, rows: Any) -> Inputs:
        """The same inputs restricted to `rows` (indices, a mask or a slice)."""
        return replace(self, arrays=tuple(replace(a, values=a.values[rows]) for a in self.arrays))

    def with_values(self, values: dict[str, np.ndarray]) -> Inputs:
        """A copy with some inputs' values replaced (same rows)."""
        return replace(self, arrays=tuple(
            replace(a, values=values[a.name]) if a.name in values else a for a in self.arrays))

    def finite_rows(self) -> np.ndarray:
        """Rows where every input is present and finite."""
        mask = np.ones(len(self), dtype=bool)
        for array in self.arrays:
            mask &= array.finite_rows()
        return mask

    def feed(self) -> Feed:
        """The structure the model's call takes: one array, a list, or a dict by name."""
        if self.structure == "single":
            return self.arrays[0].values
        if self.structure == "dict":
            return {a.name: a.values for a in self.arrays}
        return [a.values for a in self.arrays]

    @staticmethod
    def concat(parts: Sequence[Inputs]) -> Inputs:
        """Rows of several `Inputs` of the same inputs, one after another."""
        first = parts[0]
        arrays = tuple(
            replace(a, values=np.concatenate([p.arrays[k].values for p in parts], axis=0))
            for k, a in enumerate(first.arrays)
        )
        return replace(first, arrays=arrays)


# ---------------------------------------------------------------- feeds (what a model call takes)


def feed_take(feed: Feed, rows: Any) -> Feed:
    """Rows of a feed, whatever its structure."""
    if isinstance(feed, dict):
        return {k: v[rows] for k, v in feed.items()}
    if isinstance(feed, (list, tuple)):
        return [v[rows] for v in feed]
    return feed[rows]


def feed_len(feed: Feed) -> int:
    if isinstance(feed, dict):
        return len(next(iter(feed.values())))
    if isinstance(feed, (list, tuple)):
        return len(feed[0])
    return len(feed)


def feed_signature(feed: Feed) -> tuple[Any, ...]:
    """Shapes (without rows) and dtypes of a feed: equal signatures can share a traced graph."""
    if isinstance(feed, dict):
        return tuple((k, v.shape[1:], str(v.dtype)) for k, v in sorted(feed.items()))
    if isinstance(feed, (list, tuple)):
        return tuple((v.shape[1:], str(v.dtype)) for v in feed)
    return ((feed.shape[1:], str(feed.dtype)),)


def scalable_inputs(x: Inputs) -> list[InputArray]:
    """Inputs a standardization may change: numeric columns and tensors the model does not
    already scale itself (categories and token ids are never scaled)."""
    return [a for a in x.arrays if a.is_float and a.normalized is False]


def column_moments(array: InputArray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per numeric column, or of a whole tensor input (an image is one thing)."""
    values = array.values
    flat = values.reshape(len(values), -1) if array.kind == "numeric" else values.reshape(-1, 1)
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
    return mean, std


def finite_rows(x: Inputs | np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Mask of rows whose inputs (and label) are all present and finite."""
    if isinstance(x, Inputs):
        mask = x.finite_rows()
    else:
        mask = np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    if y is not None and y.dtype.kind == "f":
        mask &= np.all(np.isfinite(y.reshape(len(y), -1)), axis=1)
    return mask
