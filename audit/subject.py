"""Loading what a case names into a `Subject`: the model, its data as arrays, the task, and
how the model was trained.

Every failure raises `SubjectError` with one line that says what and where.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audit.spec import CaseSpec, Task

LABEL_CANDIDATES = ("label", "target", "y")
MAX_CLASSES = 50
_REGRESSION_LOSSES = {"mse", "mae", "huber", "log_cosh", "msle", "mape"}


class SubjectError(ValueError):
    """A case's model or data cannot be used; the message is one line naming what and where."""


@dataclass(frozen=True)
class TrainingConfig:
    """How the model was (or would be) trained: the retraining probe reproduces this."""

    optimizer: str
    learning_rate: float
    loss: str
    from_logits: bool
    epochs: int | None
    batch_size: int
    source: str  # "compile_config", "spec" or "default": where the optimizer/loss came from
    optimizer_config: tuple[tuple[str, Any], ...] = ()  # the saved optimizer's other settings


@dataclass
class Subject:
    """A loaded case: the model, the data as arrays, the task, the training config."""

    name: str
    model: Any  # keras.Model
    model_format: str  # "keras", "h5" or "savedmodel"
    x: np.ndarray  # float32, shape (n, *model input shape); NaN where a cell was missing/malformed
    y: np.ndarray  # float32 targets (regression) or int64 class indices (classification)
    task: Task
    n_classes: int  # 0 for regression
    feature_names: list[str]
    label_name: str
    training: TrainingConfig
    class_names: list[str] = field(default_factory=list)
    malformed_cells: int = 0
    label_nan_rows: int = 0

    @property
    def retrainable(self) -> bool:
        return self.model_format in ("keras", "h5")

    @property
    def n_outputs(self) -> int:
        shape = self.model.outputs[0].shape
        return int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1


def load_subject(spec: CaseSpec) -> Subject:
    """Load the case's model and data, check they fit, and resolve the task and training."""
    model, model_format = load_model(spec.model, trust=spec.trust_model)
    table = load_table(spec.data)
    label = _pick_label(table, spec.label, spec.data)
    features = list(spec.features) if spec.features else [c for c in table if c != label]
    missing = [c for c in features if c not in table]
    if missing:
        raise SubjectError(
            f"{spec.data}: feature column(s) {missing} not found; columns are {list(table)}"
        )
    x, malformed = _feature_matrix(table, features, spec.data)
    x = _fit_input_shape(x, model, features, spec.data, spec.model)
    y_raw = table[label]
    if y_raw.ndim == 1 and y_raw.dtype.kind in "fc":
        label_nan = int(np.sum(~np.isfinite(y_raw)))
    else:
        label_nan = 0
    task = spec.task or infer_task(y_raw, model)
    y, class_names = _encode_labels(y_raw, task, spec.data, label)
    n_classes = 0 if task == "regression" else max(len(class_names), 2)
    training = resolve_training(model, spec, task)
    return Subject(
        name=spec.name,
        model=model,
        model_format=model_format,
        x=x,
        y=y,
        task=task,
        n_classes=n_classes,
        feature_names=features,
        label_name=label,
        training=training,
        class_names=class_names,
        malformed_cells=malformed,
        label_nan_rows=label_nan,
    )


# ---------------------------------------------------------------- files and URIs


def _local_path(uri: str) -> tuple[str, tempfile.TemporaryDirectory | None]:
    """A local path for `uri`; object-store URIs are copied to a temporary folder first."""
    if "://" not in uri or uri.startswith("file://"):
        return uri.removeprefix("file://"), None
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    tmp = tempfile.TemporaryDirectory(prefix="flatline-")
    target = os.path.join(tmp.name, Path(path).name)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        tmp.cleanup()
        raise SubjectError(f"{uri}: not found")
    if info.type == pafs.FileType.Directory:
        pafs.copy_files(path, target, source_filesystem=fs)
    else:
        with fs.open_input_stream(path) as src, open(target, "wb") as dst:
            dst.write(src.read())
    return target, tmp


def load_model(uri: str, trust: bool = False) -> tuple[Any, str]:
    """A Keras model from `.keras`, `.h5` or a SavedModel folder, and its format name."""
    path, tmp = _local_path(uri)
    try:
        return _load_model_local(path, uri, trust)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _load_model_local(path: str, uri: str, trust: bool) -> tuple[Any, str]:
    import keras

    p = Path(path)
    if not p.exists():
        raise SubjectError(f"{uri}: model file not found")
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise SubjectError(f"{uri}: folder is not a SavedModel (no saved_model.pb)")
        return _load_savedmodel(path, uri), "savedmodel"
    suffix = p.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise SubjectError(
            f"{uri}: unsupported model format {suffix or '(none)'!r}; "
            "expected .keras, .h5 or a SavedModel folder"
        )
    try:
        model = keras.models.load_model(path, safe_mode=not trust, compile=True)
    except Exception as exc:  # keras raises many types for a corrupt file
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise SubjectError(
                f"{uri}: refused to load (it contains code); pass --trust-models if you trust it"
            ) from None
        raise SubjectError(f"{uri}: cannot load model: {_one_line(exc)}") from None
    return model, "keras" if suffix == ".keras" else "h5"


def _load_savedmodel(path: str, uri: str) -> Any:
    import keras
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    endpoints = list(loaded.signatures)
    endpoint = next((e for e in ("serving_default", "serve") if e in endpoints), None)
    if endpoint is None:
        raise SubjectError(f"{uri}: SavedModel has no serving signature; found {endpoints}")
    signature = loaded.signatures[endpoint]
    specs = [s for s in signature.structured_input_signature[1].values()]
    if len(specs) != 1:
        raise SubjectError(f"{uri}: SavedModel takes {len(specs)} inputs; only one is supported")
    layer = keras.layers.TFSMLayer(path, call_endpoint=endpoint)
    inputs = keras.Input(shape=tuple(specs[0].shape[1:]))
    out = layer(inputs)
    if isinstance(out, dict):
        out = next(iter(out.values()))
    return keras.Model(inputs, out)


def load_table(uri: str) -> dict[str, np.ndarray]:
    """Columns of a Parquet/CSV file, or arrays `x` and `y` of an `.npz`, as numpy arrays."""
    path, tmp = _local_path(uri)
    try:
        return _load_table_local(path, uri)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _load_table_local(path: str, uri: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.exists():
        raise SubjectError(f"{uri}: data file not found")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            return _load_npz(p, uri)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(p)
        elif suffix == ".csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(p)
        else:
            raise SubjectError(
                f"{uri}: unsupported data format {suffix or '(none)'!r}; "
                "expected .parquet, .csv or .npz"
            )
    except SubjectError:
        raise
    except Exception as exc:
        raise SubjectError(f"{uri}: cannot read data: {_one_line(exc)}") from None
    if table.num_rows == 0:
        raise SubjectError(f"{uri}: the data has no rows")
    return {name: _column_to_numpy(table.column(name)) for name in table.column_names}


def _load_npz(p: Path, uri: str) -> dict[str, np.ndarray]:
    with np.load(p, allow_pickle=False) as npz:
        if "x" not in npz or "y" not in npz:
            raise SubjectError(f"{uri}: .npz must hold arrays 'x' and 'y'; found {list(npz)}")
        x, y = npz["x"], npz["y"]
    if len(x) != len(y):
        raise SubjectError(f"{uri}: x has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise SubjectError(f"{uri}: the data has no rows")
    return {"x": x, "y": y}


def _column_to_numpy(column: Any) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_boolean(column.type):
        return np.array([np.nan if v is None else float(v) for v in column.to_pylist()])
    return np.array(column.to_pylist(), dtype=object)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


# ---------------------------------------------------------------- features and labels


def _pick_label(table: dict[str, np.ndarray], label: str | None, where: str) -> str:
    if label is not None:
        if label not in table:
            raise SubjectError(f"{where}: column {label!r} not found; columns are {list(table)}")
        return label
    for candidate in LABEL_CANDIDATES:
        if candidate in table:
            return candidate
    raise SubjectError(
        f"{where}: no label column given and none of {list(LABEL_CANDIDATES)} found; "
        f"columns are {list(table)}"
    )


def _feature_matrix(
    table: dict[str, np.ndarray], features: list[str], where: str
) -> tuple[np.ndarray, int]:
    """Stack feature columns as float32; malformed (non-numeric) cells become NaN and count."""
    if not features:
        raise SubjectError(f"{where}: no feature columns; columns are {list(table)}")
    if len(features) == 1 and table[features[0]].ndim > 1:  # npz: x is already a matrix
        return table[features[0]].astype(np.float32), 0
    columns, malformed = [], 0
    for name in features:
        column = table[name]
        if column.dtype == object:
            values = np.array([_to_float(v) for v in column], dtype=np.float64)
            malformed += int(sum(1 for v, f in zip(column, values, strict=True)
                                 if v is not None and np.isnan(f)))
            column = values
        columns.append(column.astype(np.float32))
    return np.stack(columns, axis=1), malformed


def _to_float(value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _fit_input_shape(
    x: np.ndarray, model: Any, features: list[str], where: str, model_uri: str
) -> np.ndarray:
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) == expected:
        return x
    if None not in expected and int(np.prod(expected)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x), *expected))
    shown = features if len(features) <= 8 else [*features[:8], "..."]
    raise SubjectError(
        f"{where}: model {model_uri} expects inputs of shape {(None, *expected)} but the data "
        f"gives {(None, *x.shape[1:])} from features {shown}"
    )


def infer_task(y: np.ndarray, model: Any = None) -> Task:
    """Regression, binary or multiclass, from the labels (and the model's head for ties)."""
    if y.ndim == 2 and y.shape[1] > 1:
        is_one_hot = np.all(np.isin(y, (0, 1))) and np.all(y.sum(axis=1) == 1)
        return "multiclass" if is_one_hot else "regression"
    flat = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if flat.dtype == object:
        n = len({v for v in flat if v is not None})
        return "binary" if n <= 2 else "multiclass"
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return "regression"
    values = np.unique(finite)
    integral = bool(np.all(values == np.round(values)))
    if not integral or len(values) > MAX_CLASSES or len(values) < 2:
        return "regression"
    if len(values) == 2:
        return "binary"
    if model is not None and _has_linear_single_output(model):
        loss = _compiled_loss_name(model)[0]
        if loss in _REGRESSION_LOSSES:
            return "regression"
    return "multiclass"


def _encode_labels(
    y: np.ndarray, task: Task, where: str, label: str
) -> tuple[np.ndarray, list[str]]:
    if task == "regression":
        if y.dtype == object:
            y = np.array([_to_float(v) for v in y])
        return y.astype(np.float32).reshape(len(y), -1).squeeze(-1) if (
            y.ndim == 1 or y.shape[-1] == 1
        ) else y.astype(np.float32), []
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        return np.argmax(y, axis=1).astype(np.int64), [str(i) for i in range(y.shape[1])]
    flat = y.reshape(len(y))
    if flat.dtype != object and not np.all(np.isfinite(flat)):
        raise SubjectError(
            f"{where}: label column {label!r} has {int(np.sum(~np.isfinite(flat)))} "
            "NaN/inf values in a classification task"
        )
    values = sorted({v for v in flat if v is not None}, key=lambda v: (str(type(v)), v))
    if flat.dtype != object and all(float(v).is_integer() and 0 <= v < MAX_CLASSES for v in values):
        n = int(max(values)) + 1
        return flat.astype(np.int64), [str(i) for i in range(max(n, 2))]
    index = {v: i for i, v in enumerate(values)}
    if any(v is None for v in flat):
        raise SubjectError(f"{where}: label column {label!r} has missing values")
    return np.array([index[v] for v in flat], dtype=np.int64), [str(v) for v in values]


# ---------------------------------------------------------------- training config


def _has_linear_single_output(model: Any) -> bool:
    last = model.layers[-1] if model.layers else None
    activation = getattr(getattr(last, "activation", None), "__name__", "linear")
    return int(model.outputs[0].shape[-1] or 1) == 1 and activation == "linear"


_LOSS_ALIASES = {
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
    return _LOSS_ALIASES.get(key, _LOSS_ALIASES.get(key.replace("_", ""), key))


def _compiled_loss_name(model: Any) -> tuple[str | None, bool]:
    """The loss the model was compiled with, and whether it expects logits."""
    try:
        config = model.get_compile_config() or {}
    except Exception:
        config = {}
    loss = config.get("loss")
    from_logits = False
    if isinstance(loss, dict):
        inner = loss.get("config")
        if isinstance(inner, dict):
            from_logits = bool(inner.get("from_logits", False))
            loss = loss.get("class_name")
        else:
            loss = inner if isinstance(inner, str) else loss.get("class_name")
    if loss is None and getattr(model, "loss", None) is not None:
        obj = model.loss
        loss = obj if isinstance(obj, str) else getattr(obj, "__name__", type(obj).__name__)
        from_logits = bool(getattr(obj, "from_logits", False))
    if not isinstance(loss, str):
        return None, False
    return canonical_loss(loss), from_logits


_OPTIMIZER_KEYS = ("momentum", "nesterov", "beta_1", "beta_2", "epsilon", "rho", "amsgrad",
                   "clipnorm", "clipvalue", "global_clipnorm", "weight_decay")


def _compiled_optimizer(model: Any) -> tuple[str | None, float | None, dict[str, Any]]:
    """The saved optimizer's family, learning rate and other plain settings (momentum, ...)."""
    try:
        config = model.get_compile_config() or {}
    except Exception:
        config = {}
    opt = config.get("optimizer")
    if isinstance(opt, dict):
        name = str(opt.get("class_name", "")).lower() or None
        inner = opt.get("config", {}) or {}
        lr = inner.get("learning_rate")
        extra = {k: inner[k] for k in _OPTIMIZER_KEYS
                 if inner.get(k) is not None and isinstance(inner[k], (int, float, bool))}
        return name, float(lr) if isinstance(lr, (int, float)) else None, extra
    if isinstance(opt, str):
        return opt.lower(), None, {}
    return None, None, {}


def default_loss(task: Task) -> str:
    return {
        "regression": "mse",
        "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy",
    }[task]


def resolve_training(model: Any, spec: CaseSpec, task: Task) -> TrainingConfig:
    """The spec's training settings over the model's compile config over defaults."""
    opt_name, opt_lr, opt_extra = _compiled_optimizer(model)
    loss_name, from_logits = _compiled_loss_name(model)
    source = "compile_config" if opt_name and loss_name else "default"
    t = spec.training
    if t.optimizer or t.loss:
        source = "spec"
    optimizer = (t.optimizer or opt_name or "adam").lower()
    learning_rate = t.learning_rate or opt_lr or (0.01 if optimizer == "sgd" else 0.001)
    loss = canonical_loss(t.loss) if t.loss else (loss_name or default_loss(task))
    return TrainingConfig(
        optimizer=optimizer,
        learning_rate=float(learning_rate),
        loss=loss,
        from_logits=from_logits if not t.loss else False,
        epochs=t.epochs,
        batch_size=t.batch_size or 32,
        source=source,
        optimizer_config=tuple(sorted(opt_extra.items())) if optimizer == opt_name else (),
    )
