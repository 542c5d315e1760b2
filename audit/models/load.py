"""A model file, whatever its format, as a Keras 3 model: `.keras`, `.h5`, a SavedModel export
(for the inference probes), a Keras 2 model (`tf_keras`, rebuilt in Keras 3 by `keras2`), or an
MLflow model folder holding one of these. `LoadedModel.format` says how it was loaded.

Every failure raises `ModelError` with one line that says what and where.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import ModelError
from audit.io.locations import LocationError, local_copy
from audit.models import keras2
from audit.util.text import one_line

#: how a model was loaded (the report's `cases.model_format`): Keras 3 files, a SavedModel for
#: the inference probes, or a Keras 2 model (`tf_keras`) rebuilt in Keras 3
MODEL_FORMATS = ("keras", "h5", "savedmodel", "keras2-savedmodel", "keras2-h5")
RETRAINABLE_FORMATS = frozenset({"keras", "h5", "keras2-savedmodel", "keras2-h5"})
#: where an MLflow model folder (one with an `MLmodel` file) keeps a Keras model
MLFLOW_MODEL_PATHS = ("data/model.keras", "data/model.h5", "data/model")
LAMBDA_NOTE = ("Keras 2 model for inference only: it holds a Lambda layer (Python code), which "
               "Keras 3 cannot rebuild")


@dataclass(frozen=True)
class LoadedModel:
    """A model as loaded: the Keras 3 model, how it was loaded, the `tf_keras` original a
    Keras 2 model was rebuilt from (checked against the data once it is read), and why a
    Keras 2 model serves the inference probes only."""

    model: Any
    format: str
    original: Any = None
    note: str | None = None


def load_model(uri: str, trust: bool = False) -> LoadedModel:
    """A Keras 3 model from `.keras`, `.h5`, a SavedModel folder (a Keras 2 one rebuilt in
    Keras 3) or an MLflow model folder holding one of these."""
    try:
        with local_copy(uri) as path:
            return _load_model_local(path, uri, trust)
    except LocationError as exc:
        raise ModelError(str(exc)) from None


def _load_model_local(path: str, uri: str, trust: bool) -> LoadedModel:
    import keras

    p = Path(path)
    if not p.exists():
        raise ModelError(f"{uri}: model file not found")
    if p.is_dir() and (p / "MLmodel").exists():
        p = _mlflow_model(p, uri)
        path = str(p)
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise ModelError(f"{uri}: folder is not a SavedModel (no saved_model.pb)")
        if keras2.is_keras2_savedmodel(p):
            if keras2.holds_code(p):  # the signature serves it without running that code
                return LoadedModel(_load_savedmodel(path, uri), "savedmodel", note=LAMBDA_NOTE)
            return _keras2_savedmodel(path, uri, trust)
        return LoadedModel(_load_savedmodel(path, uri), "savedmodel")
    suffix = p.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(
            f"{uri}: unsupported model format {suffix or '(none)'!r}; "
            "expected .keras, .h5 or a SavedModel folder"
        )
    keras2_error = None
    if suffix != ".keras" and not trust and keras2.holds_code(p):
        raise ModelError(f"{uri}: refused to load (it contains code); pass --trust-models if "
                         "you trust it")
    if suffix != ".keras" and keras2.is_keras2_h5(p):
        try:  # Keras 3 reads some of these, but loses their optimizer settings
            return _rebuilt(keras2.load_original(path, trust), uri, "keras2-h5")
        except keras2.Keras2Error as exc:
            keras2_error = str(exc)
    try:
        model = keras.models.load_model(path, safe_mode=not trust, compile=True)
    except Exception as exc:  # keras raises many types for a corrupt file
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise ModelError(
                f"{uri}: refused to load (it contains code); pass --trust-models if you trust it"
            ) from None
        if suffix != ".keras" and keras2_error is None:  # maybe a Keras 2 model after all
            try:
                return _rebuilt(keras2.load_original(path, trust), uri, "keras2-h5")
            except keras2.Keras2Error as exc2:
                keras2_error = str(exc2)
        tail = f"; as a Keras 2 model (tf_keras): {keras2_error}" if keras2_error else ""
        raise ModelError(f"{uri}: cannot load model: {one_line(exc)}{tail}") from None
    return LoadedModel(model, "keras" if suffix == ".keras" else "h5")


def _mlflow_model(folder: Path, uri: str) -> Path:
    """The Keras model inside an MLflow model folder (the `keras` flavor's `.keras` file, or
    the TF <= 2.15 `tensorflow` flavor's `data/model` SavedModel)."""
    for relative in MLFLOW_MODEL_PATHS:
        if (folder / relative).exists():
            return folder / relative
    raise ModelError(f"{uri}: MLflow model folder holds no Keras model; looked for "
                     f"{list(MLFLOW_MODEL_PATHS)}")


def _keras2_savedmodel(path: str, uri: str, trust: bool) -> LoadedModel:
    """A Keras 2 SavedModel rebuilt in Keras 3; when `tf_keras` cannot load it, its serving
    signature for the inference probes, with a note saying why."""
    try:
        original = keras2.load_original(path, trust)
    except keras2.Keras2Error as exc:
        return LoadedModel(_load_savedmodel(path, uri), "savedmodel",
                           note=f"Keras 2 model for inference only: tf_keras cannot load it "
                                f"({exc})")
    return _rebuilt(original, uri, "keras2-savedmodel")


def _rebuilt(original: Any, uri: str, model_format: str) -> LoadedModel:
    """A Keras 2 model rebuilt in Keras 3 (checked on the case's rows once they are read), or,
    when it does not rebuild, its serving signature with a note saying why."""
    try:
        return LoadedModel(keras2.convert(original), model_format, original=original)
    except keras2.NotConvertible as exc:
        return inference_only(original, uri, str(exc))


def inference_only(original: Any, uri: str, why: str) -> LoadedModel:
    """The `tf_keras` model behind its SavedModel signature, for the inference probes."""
    with tempfile.TemporaryDirectory(prefix="flatline-keras2-") as folder:
        try:
            keras2.save_savedmodel(original, folder)
        except Exception as exc:  # tf_keras raises many types for what it cannot trace
            raise ModelError(f"{uri}: Keras 2 model cannot be rebuilt in Keras 3 ({one_line(why)})"
                             f" nor served for inference ({one_line(exc)})") from None
        model = _load_savedmodel(folder, uri)
    return LoadedModel(model, "savedmodel",
                       note=f"Keras 2 model for inference only: {one_line(why)}")


def _load_savedmodel(path: str, uri: str) -> Any:
    """A SavedModel / `model.export()` artifact as a Keras model for the inference probes: one
    `keras.Input` per signature input (named like it, so columns match as for Keras inputs)
    and one output per signature output."""
    import keras
    import tensorflow as tf

    class SignatureLayer(keras.layers.TFSMLayer):
        """TFSMLayer whose dict inputs go in as keyword arguments (as signatures take them)."""

        def call(self, inputs: Any, training: bool = False, **kwargs: Any) -> Any:
            if isinstance(inputs, dict):
                return self.call_endpoint_fn(**inputs, **kwargs)
            return super().call(inputs, training=training, **kwargs)

    loaded = tf.saved_model.load(path)
    endpoints = list(loaded.signatures)
    endpoint = next((e for e in ("serving_default", "serve") if e in endpoints), None)
    if endpoint is None:
        raise ModelError(f"{uri}: SavedModel has no serving signature; found {endpoints}")
    signature = loaded.signatures[endpoint]
    specs = dict(signature.structured_input_signature[1])
    if not specs:
        raise ModelError(f"{uri}: the SavedModel's {endpoint!r} signature takes no inputs")
    layer = SignatureLayer(path, call_endpoint=endpoint)
    if len(specs) == 1:
        (name, only), = specs.items()
        inputs: Any = keras.Input(shape=tuple(only.shape[1:]), dtype=only.dtype.name, name=name)
    else:
        inputs = {name: keras.Input(shape=tuple(s.shape[1:]), dtype=s.dtype.name, name=name)
                  for name, s in sorted(specs.items())}
    out = layer(inputs)
    if isinstance(out, dict):
        out = {name: keras.layers.Identity(name=name)(value) for name, value in out.items()}
    return keras.Model(inputs, out)
