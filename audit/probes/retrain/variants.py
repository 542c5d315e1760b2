"""Building the counterfactuals: the rows they train and validate on, each plan's network,
data, loss and optimizer, its seeds' starting weights, and how a trained seed is scored."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from audit.faults.plan import Plan
from audit.models.vocab import DROPOUT_KEYS, REGULARIZER_KEYS, fitting_loss
from audit.probes import outcomes
from audit.probes.base import NotApplicable, sample_rows
from audit.probes.outcomes import Head
from audit.probes.retrain.settings import RetrainSettings
from audit.probes.retrain.trainer import TrainJob, TrainLog
from audit.probes.tfutil import (
    carry_state,
    clone_with_state,
    encode_targets,
    head_of,
    initializer_of,
    make_loss,
    make_optimizer,
    predict,
    subject_head,
)
from audit.subject import Subject
from audit.subject.inputs import Inputs, call_inputs, column_moments, finite_rows, scalable_inputs
from audit.util.text import one_line


@dataclass
class Split:
    """Training and validation rows (validation rows are always finite)."""

    x_train: Inputs
    y_train: np.ndarray
    x_val: Inputs
    y_val: np.ndarray
    full_rows: int
    #: the subject's row index of each training row
    train_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: training rows (positions in `x_train`) whose label the data disputes (`label_noise`),
    #: and the class the data gives each
    disputed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    suggested: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    disputed_share: float = float("nan")  # confident learning's share of disputed rows

    def keep_train_rows(self, rows: int) -> Split:
        """The split with only its first `rows` training rows (they are in random order)."""
        if rows >= len(self.x_train):
            return self
        return replace(self, x_train=self.x_train.take(np.arange(rows)),
                       y_train=self.y_train[:rows], train_rows=self.train_rows[:rows],
                       disputed=self.disputed[self.disputed < rows],
                       suggested=self.suggested[self.disputed < rows])


@dataclass
class Variant:
    """A plan built once: its model, its training job (trained once per seed, each seed
    starting from its own initial weights) and how to score it on validation."""

    plan: Plan
    model: Any
    job: TrainJob  # its x_val holds the validation inputs (standardized if the plan says so)
    y_val: np.ndarray
    head: Head
    task: str  # the subject's, unless the plan repaired the labels into class ids
    n_classes: int



def make_split(subject: Subject, settings: RetrainSettings) -> Split:
    """A reproducible train/validation split of (a sample of) the rows."""
    x = subject.inputs
    n = len(x)
    idx = sample_rows(n, settings.max_rows, settings.seed)
    rng = np.random.default_rng(settings.seed)
    idx = idx[rng.permutation(len(idx))]
    finite = finite_rows(x.take(idx), subject.y[idx])
    n_val = max(2, int(len(idx) * settings.validation_fraction))
    val_pool = idx[finite]
    if len(val_pool) < n_val + 2:
        raise NotApplicable("too few rows with finite values to validate a retrained clone")
    val = val_pool[:n_val]
    train = np.setdiff1d(idx, val, assume_unique=True)
    train = train[rng.permutation(len(train))]
    rows = subject.rows_in_file or n
    return Split(x.take(train), subject.y[train], x.take(val), subject.y[val], rows,
                 train_rows=train)


def _clone(model: Any, architecture: str, activations: tuple[tuple[str, str], ...] = ()) -> Any:
    import keras

    restore = dict(activations)

    def change(layer: Any) -> Any:
        config = layer.get_config()
        if architecture == "restore_activation":
            if layer.name in restore:
                config["activation"] = restore[layer.name]
        elif architecture == "default_init":
            if "kernel_initializer" in config:
                config["kernel_initializer"] = "glorot_uniform"
            if "bias_initializer" in config:
                config["bias_initializer"] = "zeros"
        elif architecture == "unregularized":
            for key in REGULARIZER_KEYS:
                if config.get(key) is not None:
                    config[key] = None
            for key in DROPOUT_KEYS:
                if config.get(key):
                    config[key] = 0.0
            if "dropout" in type(layer).__name__.lower() and config.get("rate"):
                config["rate"] = 0.0
        elif architecture == "nonsaturating" and layer.name in restore:
            config["activation"] = restore[layer.name]
            if restore[layer.name] == "relu":  # AUTOTRAINER's relu_1: He init, zero bias
                if "kernel_initializer" in config:
                    config["kernel_initializer"] = "he_uniform"
                if "bias_initializer" in config:
                    config["bias_initializer"] = "zeros"
        return layer.__class__.from_config(config)

    try:
        if architecture == "same":
            clone = keras.models.clone_model(model)
        else:
            clone = keras.models.clone_model(model, clone_function=change)
    except Exception as exc:
        raise NotApplicable(f"cannot clone the model for retraining: {exc}") from None
    carry_state(model, clone)
    return clone




def unused_name(model: Any, stem: str) -> str:
    """A layer name no layer of `model` has: a layer a variant adds must never take Keras'
    next automatic name, which a model saved in another session may already use (`dense_1`)."""
    taken = {layer.name for layer in model.layers}
    name, k = f"flatline_{stem}", 1
    while name in taken:
        name, k = f"flatline_{stem}_{k}", k + 1
    return name


def _with_head(model: Any, units: int, activation: str) -> Any:
    """`model` with its last weighted layer replaced by Dense(units, activation)."""
    import keras

    layers = model.layers
    k = max(i for i, layer in enumerate(layers) if layer.trainable_weights)
    head = keras.layers.Dense(units, activation=activation, name=unused_name(model, "head"))
    if isinstance(model, keras.Sequential) and len(model.inputs[0].shape) == 2:
        # stays a Sequential, so the trainer can stack it with its seeds
        return keras.Sequential([keras.Input(model.inputs[0].shape[1:]), *layers[:k], head])
    features = layers[k].input  # what the old head read
    if isinstance(features, (list, tuple)):
        features = keras.layers.Concatenate(name=unused_name(model, "concat"))(list(features))
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name=unused_name(model, "flatten"))(features)
    return keras.Model(call_inputs(model), head(features))


def _standardize(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    flat = ref.reshape(len(ref), -1)
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    return ((y.reshape(len(y), -1) - mean) / std).reshape(y.shape).astype(np.float32)


def standardize_inputs(x: Inputs, ref: Inputs) -> Inputs:
    """`x` with every scalable input standardized by `ref`'s statistics (training rows)."""
    changed = {}
    for array in scalable_inputs(ref):
        mean, std = column_moments(array)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        values = x[array.name].values
        if array.kind == "numeric":
            moved = (values.reshape(len(values), -1) - mean) / std
        else:
            moved = (values - mean[0]) / std[0]
        changed[array.name] = moved.reshape(values.shape).astype(np.float32)
    return x.with_values(changed)


def plan_model(subject: Subject, split: Split, plan: Plan) -> Any:
    """The network a plan trains: a clone of the model, changed as the plan says. It only
    describes the architecture; each seed's weights are drawn by `initial_weights`."""
    model = _clone(subject.model, plan.architecture, plan.activations)
    if plan.fit_loss:
        _, units, activation = fitting_loss(subject.task)
        if units is None:
            units = subject.n_classes if subject.task == "multiclass" else split.y_train.reshape(
                len(split.y_train), -1).shape[1]
        model = _with_head(model, units, activation)
    return model


def build_variants(subject: Subject, split: Split, plans: list[Plan],
                   failed: dict[str, str] | None = None) -> list[Variant]:
    """Every plan built; plans with the same architecture share one model. With `failed`, a
    plan that cannot be built costs only itself: it is left out, its one-line reason kept in
    `failed` under its name (without, the error is raised)."""
    models: dict[tuple[str, tuple[tuple[str, str], ...], bool], Any] = {}
    variants = []
    for plan in plans:
        key = (plan.architecture, plan.activations, plan.fit_loss)
        try:
            if key not in models:
                models[key] = plan_model(subject, split, plan)
            variants.append(build_variant(subject, split, plan, models[key]))
        except Exception as exc:
            if failed is None:
                raise
            failed[plan.name] = (f"cannot build this change: {type(exc).__name__}: "
                                 f"{one_line(exc)}")
    return variants


def build_variant(subject: Subject, split: Split, plan: Plan, model: Any) -> Variant:
    """Prepare one plan's data, loss and optimizer for `model` (from `plan_model`); the
    weights come per seed, see `seeded_jobs`."""
    t = subject.training
    x_tr, y_tr, x_val, y_val = split.x_train, split.y_train, split.x_val, split.y_val
    if plan.drop_bad_rows:
        keep = finite_rows(x_tr, y_tr)
        x_tr, y_tr = x_tr.take(keep), y_tr[keep]
    if plan.relabel_disputed:  # validation rows keep their given labels: they score it
        y_tr = y_tr.copy()
        y_tr[split.disputed] = split.suggested
    if plan.standardize_inputs:
        x_tr = standardize_inputs(x_tr, split.x_train)
        x_val = standardize_inputs(x_val, split.x_train)
    if plan.standardize_targets:
        y_tr, y_val = _standardize(y_tr, split.y_train), _standardize(y_val, split.y_train)
    task, n_classes = subject.task, subject.n_classes
    if plan.relabel is not None:
        y_tr = np.round(y_tr * plan.relabel).astype(np.int64)
        y_val = np.round(y_val * plan.relabel).astype(np.int64)
        n_classes = max(int(max(y_tr.max(), y_val.max())) + 1, 2)
        task = "binary" if n_classes == 2 else "multiclass"
    loss_name, from_logits = t.loss, t.from_logits
    if plan.fit_loss:
        loss_name, from_logits = fitting_loss(subject.task)[0], False
    head = head_of(model, from_logits)
    optimizer_name = plan.optimizer or t.optimizer
    extra = t.optimizer_config if plan.optimizer is None else ()
    optimizer = make_optimizer(optimizer_name, plan.learning_rate or t.learning_rate,
                               plan.clipnorm, extra)
    weights = None
    if plan.class_weights:
        counts = np.bincount(y_tr.astype(np.int64), minlength=n_classes).astype(float)
        per_class = np.where(counts > 0, len(y_tr) / (np.maximum(counts, 1) * (counts > 0).sum()),
                             0.0)
        weights = per_class[y_tr.astype(np.int64)].astype(np.float32)
    job = TrainJob(
        model=model,
        optimizer=optimizer,
        loss=make_loss(loss_name, from_logits),
        x=x_tr.feed(),
        y=encode_targets(y_tr, task, loss_name, head.units),
        epochs=int(plan.epochs or 1),
        seed=0,
        sample_weight=weights,
        x_val=x_val.feed(),
    )
    return Variant(plan, model, job, y_val, head, task, n_classes)


def initial_weights(model: Any, seed: int) -> list[np.ndarray]:
    """Fresh starting values of `model.weights`, drawn from each layer's own initializers
    under `seed`: what a clone built under that seed would start from, without building one
    (a clone costs a Keras variable per weight). Layers whose weights do not name their
    initializer (`<weight>_initializer`) fall back to a seeded clone."""
    drawn: dict[int, np.ndarray] = {}
    for k, layer in enumerate(model.layers):
        for j, variable in enumerate(layer.weights):
            init = initializer_of(layer, variable)
            if init is None:
                if not variable.trainable:  # adapted state (carried by `carry_state`): kept
                    drawn[id(variable)] = np.asarray(variable)
                continue
            config = init.get_config() if hasattr(init, "get_config") else {}
            if "seed" in config:
                mixed = (seed * 1_000_003 + k * 1009 + j) % (2**31 - 1)
                init = type(init).from_config({**config, "seed": mixed})
            drawn[id(variable)] = np.asarray(init(tuple(variable.shape), dtype=variable.dtype))
    if all(id(v) in drawn for v in model.weights):
        return [drawn[id(v)] for v in model.weights]
    import keras

    keras.utils.set_random_seed(seed)
    return clone_with_state(model).get_weights()


def seeded_jobs(variant: Variant, seeds: list[int]) -> list[TrainJob]:
    """The variant's job once per seed: its own shuffling seed and initial weights."""
    return [replace(variant.job, seed=seed, weights=initial_weights(variant.model, seed))
            for seed in seeds]


# ---------------------------------------------------------------- scoring


def score(variant: Variant, log: TrainLog, subject: Subject) -> tuple[float, float]:
    """Validation skill and output spread ratio of one trained seed of the variant (from the
    outputs the trainer predicted on the job's validation rows)."""
    raw = log.outputs if log.outputs is not None else np.full((len(variant.y_val), 1), np.nan)
    args = (variant.y_val, raw, variant.task, variant.n_classes, variant.head)
    return outcomes.skill(*args), outcomes.spread_ratio(*args)


def original_outcome(subject: Subject, split: Split) -> tuple[float, float]:
    """The shipped model's own skill and spread on the validation rows."""
    raw = predict(subject.model, split.x_val)
    head = subject_head(subject)
    args = (split.y_val, raw, subject.task, subject.n_classes, head)
    return outcomes.skill(*args), outcomes.spread_ratio(*args)




def clipped(value: float) -> float:
    """Skill for comparisons: a diverged seed (NaN) counts as the trivial predictor, and
    skills are clipped to [-1, 1]."""
    return 0.0 if not np.isfinite(value) else max(-1.0, min(1.0, value))
