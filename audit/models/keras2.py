"""Keras 2 models (TensorFlow's own Keras up to TF 2.15, the `tf_keras` package today) rebuilt
as Keras 3 models, so that every probe, retraining included, runs on them.

A Keras 2 artifact is a SavedModel folder with `keras_metadata.pb`, or an `.h5` file Keras 3
cannot read. `tf_keras` loads it as a full model; `convert` rebuilds it in Keras 3 from its
config (translating what the two versions spell differently), copies the weights layer by
layer and compiles it as it was compiled (optimizer family and settings, loss, metrics).
`disagreement` then checks that both predict the same on the case's rows (a tolerance, not
bits): a conversion is only used when it predicts as the original does.

`tf_keras` is imported only when a Keras 2 artifact is met (it is slow to import) and always
as `import tf_keras`: beside Keras 3, `TF_USE_LEGACY_KERAS` would swap `tf.keras` for the whole
process.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import Keras2Error, NotConvertible
from audit.util.text import one_line

__all__ = [
    "MARKER",
    "Keras2Error",
    "NotConvertible",
    "convert",
    "disagreement",
    "holds_code",
    "is_keras2_h5",
    "is_keras2_savedmodel",
    "load_original",
    "save_savedmodel",
]

MARKER = "keras_metadata.pb"  # what a Keras 2 `model.save("dir")` writes beside saved_model.pb
RTOL, ATOL = 1e-3, 1e-4  # agreement: |a - b| <= ATOL * max(1, |a|max) + RTOL * |a|
CHECK_ROWS = 256  # rows the predictions are compared on
#: layer config keys Keras 3 names differently: class -> {Keras 2 key: Keras 3 key}
RENAMED = {"LeakyReLU": {"alpha": "negative_slope"}}
#: layers whose `axis` Keras 3 wants as one int where Keras 2 stored a one-item list
INT_AXIS = frozenset({"BatchNormalization"})
MODELS = frozenset({"Sequential", "Functional", "Model"})
#: config keys that hold a wrapped layer (Bidirectional, TimeDistributed, RNN)
WRAPPED = ("layer", "backward_layer", "cell")


def is_keras2_savedmodel(folder: Path) -> bool:
    return (folder / MARKER).exists()


def is_keras2_h5(path: Path) -> bool:
    """An `.h5` file written by Keras 2 (its `keras_version` attribute). Keras 3 reads some
    of these, but resets their optimizer to its defaults (the saved learning rate is lost),
    so they load through `tf_keras`."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            version = file.attrs.get("keras_version", b"")
    except OSError:
        return False
    version = version.decode() if isinstance(version, bytes) else str(version)
    return version.startswith("2.")


def holds_code(path: Path) -> bool:
    """The Keras 2 artifact has a `Lambda` layer: Python bytecode that `tf_keras` runs while
    loading (its `safe_mode` does not cover `.h5` or SavedModel), and that Keras 3 cannot
    rebuild."""
    import h5py

    needle = b'"class_name": "Lambda"'
    if path.is_dir():
        metadata = path / MARKER
        return metadata.exists() and needle in metadata.read_bytes()
    try:
        with h5py.File(path, "r") as file:
            config = file.attrs.get("model_config", b"")
    except OSError:
        return False
    return needle in (config.encode() if isinstance(config, str) else bytes(config))


def load_original(path: str, trust: bool = False) -> Any:
    """The Keras 2 model at `path`, compiled as saved."""
    import tf_keras

    try:
        return tf_keras.models.load_model(path, compile=True, safe_mode=not trust)
    except Exception as exc:  # tf_keras raises many types for what it cannot read
        raise Keras2Error(one_line(exc)) from None


@dataclass(frozen=True)
class Rebuild:
    """A Keras 2 model read with `tf_keras` and its Keras 3 twin, or why there is none."""

    original: Any
    model: Any = None  # the Keras 3 twin; None when it does not rebuild
    why_not: str | None = None


def rebuild(path: str, trust: bool = False) -> Rebuild:
    """The one call in: the Keras 2 model at `path` and its Keras 3 twin (or why not). Raises
    `Keras2Error` when `tf_keras` cannot read it at all."""
    original = load_original(path, trust)
    try:
        return Rebuild(original, convert(original))
    except NotConvertible as exc:
        return Rebuild(original, why_not=str(exc))


def save_savedmodel(original: Any, folder: str) -> None:
    """Write the Keras 2 model as a SavedModel (its serving signature serves the inference
    probes when the model does not convert)."""
    original.save(folder, save_format="tf")


# ---------------------------------------------------------------- architecture


def convert(original: Any) -> Any:
    """The Keras 3 twin of a Keras 2 model: same architecture, weights and compile config."""
    import keras

    layers = _all_layers(original)
    try:
        config = original.get_config()
    except Exception as exc:
        raise NotConvertible(f"its config cannot be read: {one_line(exc)}") from None
    cls = keras.Sequential if type(original).__name__ == "Sequential" else keras.Model
    config = _model_config(copy.deepcopy(config), layers)
    try:
        model = cls.from_config(config)
    except Exception as exc:
        raise NotConvertible(f"Keras 3 cannot rebuild it: {one_line(exc)}") from None
    try:
        for layer in original.layers:
            _copy_weights(layer, model)
    except NotConvertible:
        raise
    except Exception as exc:
        raise NotConvertible(f"its weights do not copy: {one_line(exc)}") from None
    _compile(original, model)
    return model


def _all_layers(model: Any) -> dict[str, Any]:
    """Every layer of the model by name, nested models' layers included."""
    out: dict[str, Any] = {}
    for layer in model.layers:
        out[layer.name] = layer
        if hasattr(layer, "layers"):
            out.update(_all_layers(layer))
    return out


def _model_config(config: dict[str, Any], layers: dict[str, Any]) -> dict[str, Any]:
    entries = config.get("layers", [])
    has_input = any(e.get("class_name") == "InputLayer" for e in entries)
    config["layers"] = [_layer_entry(e, layers, has_input) for e in entries]
    if any("inbound_nodes" in e for e in entries):
        _renumber_nodes(config)
    return config


def _renumber_nodes(config: dict[str, Any]) -> None:
    """Keras 2 counts a nested model's own building among its call sites (its first call in
    the outer model is node 1); Keras 3 numbers only the calls the config makes. Renumber
    each layer's node references 0, 1, ... in their order."""
    refs: list[list[Any]] = []
    for entry in config["layers"]:
        for node in entry.get("inbound_nodes") or []:
            refs.extend(r for r in node if isinstance(r, list) and len(r) >= 3)
    for key in ("input_layers", "output_layers"):
        value = config.get(key) or []
        refs.extend([value] if value and isinstance(value[0], str) else value)
    used: dict[str, set[int]] = {}
    for ref in refs:
        used.setdefault(ref[0], set()).add(int(ref[1]))
    order = {name: {old: new for new, old in enumerate(sorted(seen))}
             for name, seen in used.items()}
    for ref in refs:
        ref[1] = order[ref[0]][int(ref[1])]


def _layer_entry(entry: dict[str, Any], layers: dict[str, Any],
                 has_input: bool) -> dict[str, Any]:
    """One layer's serialized entry, rewritten for Keras 3."""
    import keras

    name = entry.get("class_name", "?")
    config = entry.get("config", {})
    entry["module"] = "keras.layers"
    entry["registered_name"] = None
    if name in MODELS:
        entry["class_name"] = "Sequential" if name == "Sequential" else "Functional"
        entry["module"] = "keras"
        entry["config"] = _model_config(config, layers)
        return entry
    if name == "Lambda":
        raise NotConvertible(f"layer {config.get('name')!r} (Lambda) holds Python code, which "
                             "Keras 3 cannot rebuild from a Keras 2 config")
    cls = getattr(keras.layers, name, None)
    if cls is None or not isinstance(cls, type):
        raise NotConvertible(f"layer {config.get('name')!r} ({name}) has no Keras 3 class")
    if has_input and name != "InputLayer":  # the InputLayer says the shape; a copy is noise
        config.pop("batch_input_shape", None)
    entry["config"] = _layer_config(name, cls, config, layers)
    return entry


def _layer_config(name: str, cls: type, config: dict[str, Any],
                  layers: dict[str, Any]) -> dict[str, Any]:
    """A Keras 2 layer config in Keras 3's spelling: renamed keys, a plain dtype, adapted
    state (vocabularies, bin boundaries) written in, wrapped layers translated too, and the
    keys Keras 3 does not take dropped."""
    layer = layers.get(config.get("name"))
    config = {RENAMED.get(name, {}).get(k, k): v for k, v in config.items()}
    for key in WRAPPED:
        if isinstance(config.get(key), dict) and "class_name" in config[key]:
            config[key] = _layer_entry(config[key], layers, has_input=True)
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # a mixed-precision Policy
        config["dtype"] = (dtype.get("config") or {}).get("name", "float32")
    if name == "InputLayer" and "batch_input_shape" in config:
        config["batch_shape"] = config.pop("batch_input_shape")
    elif "batch_input_shape" in config:
        shape = config.pop("batch_input_shape")
        if shape is not None:
            config["input_shape"] = tuple(shape[1:])
    if name in INT_AXIS and isinstance(config.get("axis"), (list, tuple)):
        if len(config["axis"]) != 1:
            raise NotConvertible(f"layer {config.get('name')!r} ({name}) normalizes over axes "
                                 f"{config['axis']}; Keras 3 takes one")
        config["axis"] = int(config["axis"][0])
    if layer is not None and hasattr(layer, "get_vocabulary"):
        config["vocabulary"] = layer.get_vocabulary(include_special_tokens=False)
    if name == "Discretization" and config.get("bin_boundaries") is None and layer is not None:
        bounds = getattr(layer, "bin_boundaries", None)
        if bounds is not None:  # adapted: the boundaries live on the layer, not in its config
            config["bin_boundaries"], config["num_bins"] = [float(b) for b in bounds], None
    accepted = _init_parameters(cls)
    if accepted is not None:
        config = {k: v for k, v in config.items() if k in accepted}
    return config


def _init_parameters(cls: type) -> set[str] | None:
    """The keyword arguments a Keras 3 layer class takes (None: it takes any)."""
    import keras

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {"self"}
        if klass is keras.layers.Layer:
            return (names | {"input_shape", "input_dim"}) - {"self"}
    return None


# ---------------------------------------------------------------- weights


def _short(name: str) -> str:
    return name.split(":")[0].split("/")[-1]


def _copy_weights(layer: Any, model: Any) -> None:
    """Layer `layer`'s weights into the Keras 3 layer of the same name: in order when the
    shapes line up, else by weight name (Keras 3 keeps fewer bookkeeping weights)."""
    source = [w for w in layer.weights if hasattr(w, "numpy")]  # lookups: vocabulary in config
    if not source:
        return
    try:
        target = model.get_layer(layer.name)
    except ValueError:
        raise NotConvertible(f"layer {layer.name!r} is missing after the rebuild") from None
    variables = list(target.weights)
    values = [np.asarray(w.numpy()) for w in source]
    if [tuple(v.shape) for v in variables] == [v.shape for v in values]:
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
    else:
        by_name = {_short(w.name): v for w, v in zip(source, values, strict=True)}
        for variable in variables:
            value = by_name.get(_short(variable.name))
            if value is None or tuple(variable.shape) != value.shape:
                raise NotConvertible(
                    f"layer {layer.name!r} ({type(layer).__name__}): Keras 3 weight "
                    f"{variable.name!r} {tuple(variable.shape)} has no match among Keras 2's "
                    f"{[(_short(w.name), tuple(w.shape)) for w in source]}")
            variable.assign(value)
    if hasattr(target, "finalize_state") and hasattr(target, "adapt_mean"):
        target.finalize_state()  # Normalization derives its mean/variance tensors here


# ---------------------------------------------------------------- compile config


def _compile(original: Any, model: Any) -> None:
    """Compile the Keras 3 model with the original's optimizer (family, rate and plain
    settings), loss and metrics; an uncompiled original stays uncompiled."""
    try:
        config = original.get_compile_config() or {}
    except Exception:
        config = {}
    if not config and getattr(original, "optimizer", None) is None:
        return
    optimizer = _optimizer(config.get("optimizer"), original)
    loss = _map(_loss, config.get("loss", getattr(original, "loss", None)))
    metrics = _metrics(config.get("metrics"))
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except Exception:
        model.compile(optimizer=optimizer, loss=loss)  # metrics are not what the audit needs


def _optimizer(config: Any, original: Any) -> Any:
    import keras

    if not isinstance(config, dict):
        live = getattr(original, "optimizer", None)
        config = {"class_name": type(live).__name__, "config": live.get_config()} if live else {}
    name = str(config.get("class_name", "Adam")).split(">")[-1]
    inner = dict(config.get("config") or {})
    rate = inner.get("learning_rate")
    if isinstance(rate, dict):  # a schedule: the rate it starts from
        rate = (rate.get("config") or {}).get("initial_learning_rate")
    cls = getattr(keras.optimizers, name, None)
    if not isinstance(cls, type):
        raise NotConvertible(f"optimizer {name!r} has no Keras 3 class")
    accepted = set(inspect.signature(cls.__init__).parameters)
    kwargs = {k: v for k, v in inner.items()
              if k in accepted and k != "name" and isinstance(v, (int, float, bool))
              and not isinstance(v, dict)}
    if isinstance(rate, (int, float)):
        kwargs["learning_rate"] = float(np.float32(rate))
    return cls(**kwargs)


def _map(fn: Any, value: Any) -> Any:
    """`fn` over one value, a per-output dict or a per-output list."""
    if isinstance(value, dict) and "class_name" not in value:
        return {k: fn(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fn(v) for v in value]
    return fn(value)


def _loss(value: Any) -> Any:
    """A Keras 2 loss (a name, a serialized loss, or a live loss object or function) as Keras
    3 takes it: the same name, or the Keras 3 class with the settings it shares."""
    import keras

    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict):  # the live object of a model compiled in memory
        if not hasattr(value, "get_config"):
            return getattr(value, "__name__", type(value).__name__)
        value = {"class_name": type(value).__name__, "config": value.get_config()}
    name, inner = value.get("class_name"), value.get("config")
    if isinstance(inner, str):  # a loss function serialized by name
        return inner
    cls = getattr(keras.losses, str(name), None)
    if not isinstance(cls, type):
        raise NotConvertible(f"loss {name!r} has no Keras 3 class")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"reduction", "name"}
    return cls(**{k: v for k, v in (inner or {}).items() if k in accepted})


def _metrics(value: Any) -> Any:
    """The metrics Keras 3 knows by the same name; the others are left out."""
    if isinstance(value, dict):
        return {k: _metrics(v) for k, v in value.items()}
    if not isinstance(value, (list, tuple)):
        return None
    if len(value) == 1 and isinstance(value[0], (list, tuple)):  # .h5: one list per output
        value = value[0]
    out = []
    for item in value:
        if isinstance(item, (list, tuple, dict)) and not (
                isinstance(item, dict) and "class_name" in item):
            return None  # per-output nesting Keras 3 spells differently: leave it out
        name = item if isinstance(item, str) else (item.get("config") or {}).get("name")
        if isinstance(name, str):
            out.append(name)
    return out or None


# ---------------------------------------------------------------- the check


def disagreement(original: Any, model: Any, feed: Any, head: int = 0) -> str | None:
    """None when the Keras 3 model predicts as the Keras 2 original on the feed's rows
    (output `head` of the original), else one line saying by how much they differ."""
    import tensorflow as tf

    rows = _check_rows(feed)
    if rows == 0:
        return None
    x = tf.nest.map_structure(lambda v: tf.constant(v[:rows]), feed)
    try:
        want = original(x, training=False)
    except Exception as exc:
        return f"the Keras 2 model cannot predict on these rows: {one_line(exc)}"
    if isinstance(want, dict):
        want = list(want.values())
    if isinstance(want, (list, tuple)):
        want = want[head]
    try:
        got = model(x, training=False)
    except Exception as exc:  # a rebuilt layer that cannot run (an empty lookup table, ...)
        return f"the rebuild cannot predict: {one_line(exc)}"
    if isinstance(got, dict):
        got = list(got.values())
    if isinstance(got, (list, tuple)):  # the whole model, not one head
        got = got[head] if len(got) > 1 else got[0]
    a = np.asarray(want, dtype=np.float64).reshape(rows, -1)
    b = np.asarray(got, dtype=np.float64).reshape(rows, -1)
    if a.shape != b.shape:
        return f"outputs have shapes {a.shape[1:]} (Keras 2) and {b.shape[1:]} (Keras 3)"
    scale = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0
    gap = np.abs(a - b)
    bad = ~(gap <= ATOL * max(1.0, scale) + RTOL * np.abs(a)) & ~(np.isnan(a) & np.isnan(b))
    if not bad.any():
        return None
    worst = float(np.nanmax(np.where(np.isfinite(gap), gap, np.inf)))
    return (f"predictions differ on {int(bad.any(axis=1).sum())} of {rows} rows "
            f"(largest gap {worst:.3g}, output scale {scale:.3g})")


def _check_rows(feed: Any) -> int:
    if isinstance(feed, dict):
        feed = next(iter(feed.values()), np.zeros(0))
    elif isinstance(feed, (list, tuple)):
        feed = feed[0]
    return min(len(feed), CHECK_ROWS)
