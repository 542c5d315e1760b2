"""Loading what a case names into a `Subject`: the model (the audited head), its data as typed
named inputs, the task, and how the model was trained.

Every failure raises `SubjectError` with one line that says what and where.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from audit.errors import SubjectError
from audit.io.locations import LocationError
from audit.io.tables import DataOptions, TableError, column_names, read_table
from audit.manifest.case import CaseSpec, Task
from audit.models import keras2
from audit.models.load import (
    RETRAINABLE_FORMATS,
    LoadedModel,
    ModelError,
    inference_only,
    load_model,
)
from audit.models.vocab import REGRESSION_LOSSES
from audit.subject import classes
from audit.subject.inputs import (
    InputArray,
    Inputs,
    ModelInput,
    call_inputs,
    column_hints,
    feed_layout,
    model_inputs,
)
from audit.subject.training_config import (
    TrainingConfig,
    compiled_loss_name,
    has_linear_single_output,
    resolve_training,
)

LABEL_CANDIDATES = ("label", "target", "y")
MAX_CLASSES = 50
MIN_ROWS = 20  # fewer usable rows than this support no conclusion
MIN_ROWS_PER_CLASS = 3  # a label whose every class has fewer rows is an id, not a class


@dataclass
class Subject:
    """A loaded case: the model (one head), its typed inputs, the labels, the task and how the
    model was trained."""

    name: str
    model: Any  # keras.Model with one output: the audited head
    model_format: str  # how the model was loaded: one of `model_files.MODEL_FORMATS`
    inputs: Inputs  # one array per model input; NaN where a numeric cell was missing/malformed
    y: np.ndarray  # float32 targets (regression) or int64 class indices (classification)
    task: Task
    n_classes: int  # 0 for regression
    label_name: str
    training: TrainingConfig
    class_names: list[str] = field(default_factory=list)
    malformed_cells: int = 0
    label_nan_rows: int = 0
    output_name: str | None = None  # the audited head's name
    rows_in_file: int = 0  # rows the dataset holds (the audit may read a sample)
    rows_in_file_estimated: bool = False  # rows_in_file is an estimate (big TFRecord shards)
    load_note: str | None = None  # why a Keras 2 model serves the inference probes only

    @property
    def feature_names(self) -> list[str]:
        return self.inputs.columns

    @property
    def retrainable(self) -> bool:
        return self.model_format in RETRAINABLE_FORMATS

    @property
    def not_retrainable(self) -> str:
        """Why retraining cannot run on this model, in one line."""
        return self.load_note or ("retraining needs a .keras or .h5 model, or a Keras 2 one (a "
                                  "SavedModel export has no config)")

    @property
    def n_outputs(self) -> int:
        shape = self.model.outputs[0].shape
        return int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1


def load_subject(spec: CaseSpec) -> Subject:
    """Load the case's model and data, match columns to the model's inputs, pick the head, and
    resolve the task and training. A Keras 2 model rebuilt in Keras 3 must predict as the
    original on the case's rows, else the case runs the inference probes on the original."""
    try:
        loaded = load_model(spec.model, trust=spec.trust_model)
        subject, head = subject_of(spec, loaded)
        if loaded.original is not None:
            problem = keras2.disagreement(loaded.original, subject.model,
                                          subject.inputs.feed(), head)
            if problem:
                why = f"its Keras 3 rebuild does not predict as it does: {problem}"
                subject, _ = subject_of(spec, inference_only(loaded.original, spec.model, why))
    except ModelError as exc:
        raise SubjectError(str(exc)) from None
    return subject


def subject_of(spec: CaseSpec, loaded: LoadedModel) -> tuple[Subject, int]:
    """The subject of one loaded model, and the index of its audited head (a test comparing
    two datasets of one model loads the model once)."""
    full_model = loaded.model
    model, head_index, head_name = select_head(full_model, spec.output, spec.model)
    declared = model_inputs(model)
    fmt = spec.data_format
    options = DataOptions(fmt.type if fmt else None, fmt.compression if fmt else None,
                          spec.data_schema)
    try:
        names = column_names(spec.data, options)
    except (TableError, LocationError) as exc:
        raise SubjectError(str(exc)) from None
    label = _pick_label(names, spec.label, spec.data)
    plan = plan_columns(declared, names, label, spec)
    wanted = list(dict.fromkeys([*(c for cols in plan.values() for c in cols), label]))
    # a TFRecord reader parses by what each input takes; every record must hold the label
    options = replace(options, hints=column_hints(declared, plan), required=(label,))
    try:
        table = read_table(spec.data, wanted, spec.budget.max_rows, spec.seed, options)
    except (TableError, LocationError) as exc:
        raise SubjectError(str(exc)) from None
    inputs, malformed = build_inputs(model, declared, plan, table.columns, spec.data)
    y_raw = table.columns[label]
    label_nan = int(np.sum(~np.isfinite(y_raw))) if y_raw.dtype.kind in "fc" else 0
    if spec.classes is None:
        task = spec.task or infer_task(y_raw, model)
        y, class_names = _encode_labels(y_raw, task, spec.data, label)
    else:
        task, y, class_names = _encode_declared(y_raw, model, spec, label)
    n_classes = 0 if task == "regression" else max(len(class_names), 2)
    check_enough_rows(inputs, y, task, spec.data)
    training = resolve_training(full_model, spec, task, head_index, head_name)
    return Subject(
        name=spec.name,
        model=model,
        model_format=loaded.format,
        inputs=inputs,
        y=y,
        task=task,
        n_classes=n_classes,
        label_name=label,
        training=training,
        class_names=class_names,
        malformed_cells=malformed,
        label_nan_rows=label_nan,
        output_name=head_name,
        rows_in_file=table.rows_in_file,
        rows_in_file_estimated=table.rows_in_file_estimated,
        load_note=loaded.note,
    ), head_index


# ---------------------------------------------------------------- models


def select_head(model: Any, output: str | None, where: str) -> tuple[Any, int, str | None]:
    """The model cut down to the audited output (`output`, default the first), its index and
    name. A single-output model is returned as is."""
    import keras

    names = list(getattr(model, "output_names", None) or [])
    if len(model.outputs) == 1:
        if output is not None and names and output not in names:
            raise SubjectError(f"{where}: output {output!r} not found; the model's output is "
                               f"{names[0]!r}")
        return model, 0, names[0] if names else None
    if output is None:
        index = 0
    elif output in names:
        index = names.index(output)
    else:
        raise SubjectError(f"{where}: output {output!r} not found; outputs are {names}")
    head = keras.Model(call_inputs(model), model.outputs[index])
    return head, index, names[index] if names else None


# ---------------------------------------------------------------- columns -> inputs


def _pick_label(names: list[str], label: str | None, where: str) -> str:
    if label is not None:
        if label not in names:
            raise SubjectError(f"{where}: column {label!r} not found; columns are {names}")
        return label
    for candidate in LABEL_CANDIDATES:
        if candidate in names:
            return candidate
    raise SubjectError(
        f"{where}: no label column given and none of {list(LABEL_CANDIDATES)} found; "
        f"columns are {names}"
    )


def plan_columns(declared: list[ModelInput], names: list[str], label: str,
                 spec: CaseSpec) -> dict[str, list[str]]:
    """Which data columns feed each model input.

    The manifest's `inputs:` map comes first; then a column named like the input; a
    single-input model otherwise reads `features:` or every non-label column, in order."""
    mapping = {k: [v] if isinstance(v, str) else list(v) for k, v in (spec.inputs or {}).items()}
    known = [d.name for d in declared]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise SubjectError(f"{spec.data}: inputs: {unknown} are not inputs of model "
                           f"{spec.model}; its inputs are {known}")
    plan: dict[str, list[str]] = {}
    for d in declared:
        if d.name in mapping:
            plan[d.name] = mapping[d.name]
        elif len(declared) == 1:
            plan[d.name] = (list(spec.features) if spec.features
                            else [c for c in names if c != label])
        elif d.name in names:
            plan[d.name] = [d.name]
        else:
            raise SubjectError(
                f"{spec.data}: model input {d.name!r} ({d.kind}, shape {(None, *d.shape)}) has "
                f"no column of that name; columns are {names}; map it with `inputs: "
                f"{{{d.name}: COLUMN}}`")
        missing = [c for c in plan[d.name] if c not in names]
        if missing:
            raise SubjectError(f"{spec.data}: model input {d.name!r} reads column(s) {missing} "
                               f"not found; columns are {names}")
        if not plan[d.name]:
            raise SubjectError(f"{spec.data}: no feature columns for model input {d.name!r}; "
                               f"columns are {names}")
    return plan


def build_inputs(model: Any, declared: list[ModelInput], plan: dict[str, list[str]],
                 columns: dict[str, np.ndarray], where: str) -> tuple[Inputs, int]:
    """Typed arrays, one per model input, shaped as the input expects; and the number of
    malformed numeric cells (text where a number belongs), which became NaN."""
    arrays, malformed = [], 0
    for d in declared:
        cols = plan[d.name]
        values, bad = _input_values(d, cols, columns, where)
        malformed += bad
        values = _fit_shape(values, d, cols, where)
        arrays.append(InputArray(d.name, d.kind, values, tuple(cols), d.normalized))
    return Inputs(tuple(arrays), feed_layout(model)), malformed


def _describe(d: ModelInput, cols: list[str]) -> str:
    shown = cols if len(cols) <= 6 else [*cols[:6], "..."]
    return f"model input {d.name!r} ({d.kind}, {d.dtype}, shape {(None, *d.shape)}) from {shown}"


def _input_values(d: ModelInput, cols: list[str], columns: dict[str, np.ndarray],
                  where: str) -> tuple[np.ndarray, int]:
    raw = [columns[c] for c in cols]
    for c, values in zip(cols, raw, strict=True):
        if values.dtype == object and any(isinstance(v, list) for v in values[:1000]):
            lengths = sorted({len(v) for v in values if isinstance(v, list)})
            raise SubjectError(
                f"{where}: column {c!r} holds lists of different lengths "
                f"({lengths[0]}..{lengths[-1]}); {_describe(d, cols)} needs one length: pad them")
    if d.dtype == "string":
        if len(raw) != 1:
            raise SubjectError(f"{where}: {_describe(d, cols)}: a string input reads one column")
        return np.array(["" if v is None else _as_text(v) for v in raw[0].reshape(-1)],
                        dtype=object).reshape(raw[0].shape), 0
    if d.kind in ("categorical", "tokens"):
        if len(raw) != 1:
            raise SubjectError(f"{where}: {_describe(d, cols)}: an id input reads one column")
        values = raw[0]
        if values.dtype == object:
            raise SubjectError(f"{where}: column {cols[0]!r} holds text but {_describe(d, cols)} "
                               "expects integer ids")
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise SubjectError(f"{where}: column {cols[0]!r} has missing values but "
                               f"{_describe(d, cols)} expects integer ids")
        dtype = d.dtype if d.dtype.startswith("int") else "float32"
        return values.astype(dtype), 0
    parts, malformed = [], 0
    for c, values in zip(cols, raw, strict=True):
        if values.dtype == object:
            numbers = np.array([_to_float(v) for v in values], dtype=np.float64)
            present = np.array([v is not None for v in values])
            bad = present & np.isnan(numbers)
            if present.any() and bad[present].all():
                raise SubjectError(f"{where}: column {c!r} holds text (e.g. {values[bad][0]!r}) "
                                   f"but {_describe(d, cols)} is numeric")
            malformed += int(bad.sum())
            values = numbers
        parts.append(values.astype(np.float32))
    if len(parts) == 1:
        return parts[0], malformed
    if any(p.ndim != 1 for p in parts):
        raise SubjectError(f"{where}: {_describe(d, cols)}: several columns stack only when each "
                           "holds one number per row")
    return np.stack(parts, axis=1), malformed


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fit_shape(values: np.ndarray, d: ModelInput, cols: list[str], where: str) -> np.ndarray:
    """`values` reshaped to the input's per-row shape, when the sizes allow it."""
    n, given = len(values), tuple(values.shape[1:])
    expected = d.shape
    if len(given) == len(expected) and all(e is None or e == g
                                           for e, g in zip(expected, given, strict=True)):
        return values
    known = [e for e in expected if e is not None]
    size = int(np.prod(given)) if given else 1
    if None not in expected and int(np.prod(expected)) == size:
        return values.reshape((n, *expected))
    if expected.count(None) == 1 and known and size % int(np.prod(known)) == 0:
        return values.reshape((n, *(e if e is not None else -1 for e in expected)))
    raise SubjectError(f"{where}: {_describe(d, cols)} expects rows of shape {expected} but the "
                       f"data gives {given}")


def _to_float(value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def check_enough_rows(inputs: Inputs, y: np.ndarray, task: Task, where: str) -> None:
    """Refuse data too small for any conclusion: too few usable rows, or (classification)
    labels with hardly a repeat, which are ids rather than classes."""
    usable = inputs.finite_rows()
    if y.dtype.kind == "f":
        usable &= np.all(np.isfinite(y.reshape(len(y), -1)), axis=1)
    count = int(usable.sum())
    if count < MIN_ROWS:
        raise SubjectError(f"{where}: {count} usable row(s) (finite inputs and label) of "
                           f"{len(y)}; an audit needs at least {MIN_ROWS}")
    if task != "regression":
        counts = np.bincount(y[usable].astype(np.int64))
        if counts.max() < MIN_ROWS_PER_CLASS:
            raise SubjectError(f"{where}: no class has {MIN_ROWS_PER_CLASS} or more rows "
                               f"({len(counts[counts > 0])} classes in {count} rows); an audit "
                               "needs repeated classes")


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
    if model is not None and has_linear_single_output(model):
        loss = compiled_loss_name(model)[0]
        if loss in REGRESSION_LOSSES:
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


def _encode_declared(y: np.ndarray, model: Any, spec: CaseSpec,
                     label: str) -> tuple[Task, np.ndarray, list[str]]:
    """The task and the labels encoded in the model's class order, as `classes:` declares it."""
    assert spec.classes is not None
    where = f"case {spec.name!r} ({spec.data})"
    if spec.task == "regression":
        raise SubjectError(f"{where}: `classes:` is for classification, but the case sets "
                           "task: regression")
    shape = model.outputs[0].shape
    units = int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1
    try:
        classes.check_units(spec.classes, units, where)
        y_codes, names = classes.encode(y, spec.classes, where, label)
    except classes.ClassesError as exc:
        raise SubjectError(str(exc)) from None
    task = spec.task or ("binary" if len(names) == 2 else "multiclass")
    return task, y_codes, names
