"""A model file, whatever its format, as a Keras 3 model: `.keras`, `.h5`, a SavedModel export
(for the inference probes), a Keras 2 model (`tf_keras`, rebuilt in Keras 3 by `keras2`), or an
MLflow model folder holding one of these. `LoadedModel.format` says how it was loaded.

Every failure raises `ModelError` with one line that says what and where.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import Keras2Error, ModelError
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
    Keras 3) or an MLflow model folder holding one of these: the format is detected once
    (`detect_format`), then its one loader runs (`LOADERS`)."""
    try:
        with local_copy(uri) as path:
            where, model_format = detect_format(Path(path), uri, trust)
            return LOADERS[model_format](str(where), uri, trust)
    except LocationError as exc:
        raise ModelError(str(exc)) from None


def detect_format(path: Path, uri: str, trust: bool = False) -> tuple[Path, str]:
    """Where the model is (inside an MLflow model folder, its Keras model) and its format, a
    key of `LOADERS`, read off the files alone. Raises `ModelError` for what is no model and
    for a Keras 2 `.h5` holding code when `trust` is off."""
    if not path.exists():
        raise ModelError(f"{uri}: model file not found")
    if path.is_dir() and (path / "MLmodel").exists():
        path = _mlflow_model(path, uri)
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{uri}: folder is not a SavedModel (no saved_model.pb)")
        return path, "keras2-savedmodel" if keras2.is_keras2_savedmodel(path) else "savedmodel"
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return path, "keras"
    if suffix not in (".h5", ".hdf5"):
        raise ModelError(f"{uri}: unsupported model format {suffix or '(none)'!r}; expected "
                         ".keras, .h5 or a SavedModel folder")
    if not trust and keras2.holds_code(path):
        raise ModelError(f"{uri}: refused to load (it contains code); pass --trust-models if "
                         "you trust it")
    return path, "keras2-h5" if keras2.is_keras2_h5(path) else "h5"


def _keras3(path: str, uri: str, trust: bool, keras2_error: str | None = None) -> LoadedModel:
    """A `.keras` or Keras 3 `.h5` file. An `.h5` Keras 3 cannot read may still be a Keras 2
    model its header did not show: then it is read as one."""
    import keras

    h5 = not path.lower().endswith(".keras")
    try:
        return LoadedModel(keras.models.load_model(path, safe_mode=not trust, compile=True),
                           "h5" if h5 else "keras")
    except Exception as exc:  # keras raises many types for a corrupt file
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise ModelError(f"{uri}: refused to load (it contains code); pass --trust-models "
                             "if you trust it") from None
        if h5 and keras2_error is None:  # maybe a Keras 2 model after all
            try:
                return _keras2(keras2.rebuild(path, trust), uri, "keras2-h5")
            except Keras2Error as exc2:
                keras2_error = str(exc2)
        tail = f"; as a Keras 2 model (tf_keras): {keras2_error}" if keras2_error else ""
        raise ModelError(f"{uri}: cannot load model: {one_line(exc)}{tail}") from None


def _keras2_h5(path: str, uri: str, trust: bool) -> LoadedModel:
    """A Keras 2 `.h5`, rebuilt in Keras 3; when `tf_keras` cannot read it, Keras 3 tries
    (it reads some of these, but loses their optimizer settings)."""
    try:
        return _keras2(keras2.rebuild(path, trust), uri, "keras2-h5")
    except Keras2Error as exc:
        return _keras3(path, uri, trust, keras2_error=str(exc))


def _keras2_savedmodel(path: str, uri: str, trust: bool) -> LoadedModel:
    """A Keras 2 SavedModel rebuilt in Keras 3; one holding code (a Lambda layer), or one
    `tf_keras` cannot load, serves the inference probes through its signature instead."""
    if keras2.holds_code(Path(path)):  # the signature serves it without running that code
        return LoadedModel(_load_savedmodel(path, uri), "savedmodel", note=LAMBDA_NOTE)
    try:
        rebuilt = keras2.rebuild(path, trust)
    except Keras2Error as exc:
        return LoadedModel(_load_savedmodel(path, uri), "savedmodel",
                           note=f"Keras 2 model for inference only: tf_keras cannot load it "
                                f"({exc})")
    return _keras2(rebuilt, uri, "keras2-savedmodel")


def _savedmodel(path: str, uri: str, trust: bool) -> LoadedModel:
    return LoadedModel(_load_savedmodel(path, uri), "savedmodel")


def _keras2(rebuilt: keras2.Rebuild, uri: str, model_format: str) -> LoadedModel:
    """A Keras 2 model's Keras 3 twin (checked on the case's rows once they are read), or,
    when it has none, its serving signature with a note saying why."""
    if rebuilt.model is None:
        return inference_only(rebuilt.original, uri, rebuilt.why_not or "it does not rebuild")
    return LoadedModel(rebuilt.model, model_format, original=rebuilt.original)


#: detected format -> its loader, `(path, uri, trust) -> LoadedModel`
LOADERS: dict[str, Callable[[str, str, bool], LoadedModel]] = {
    "keras": _keras3,
    "h5": _keras3,
    "keras2-h5": _keras2_h5,
    "savedmodel": _savedmodel,
    "keras2-savedmodel": _keras2_savedmodel,
}


def _mlflow_model(folder: Path, uri: str) -> Path:
    """The Keras model inside an MLflow model folder (the `keras` flavor's `.keras` file, or
    the TF <= 2.15 `tensorflow` flavor's `data/model` SavedModel)."""
    for relative in MLFLOW_MODEL_PATHS:
        if (folder / relative).exists():
            return folder / relative
    raise ModelError(f"{uri}: MLflow model folder holds no Keras model; looked for "
                     f"{list(MLFLOW_MODEL_PATHS)}")


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
