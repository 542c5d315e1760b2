"""The `retrain` probe: which change brings the model back to life?

It retrains fresh clones under the model's own training config (the baseline: does it reproduce
the symptom?) and under one-change counterfactuals (standardized inputs or targets, another
learning rate, Adam with its rate control, the loss that fits the labels, balanced class
weights, NaN rows dropped, repaired labels, non-saturating activations, default initialization,
gradient clipping, longer training), each as long as the original training in optimizer steps
within a FLOP budget (`budget.plan_length`). The learning rate is searched in decades
(`lr_walk`); plans race seed by seed (`Race`) until the confirmation rule is met or out of
reach. When no single change reaches skill, it tries the most promising pairs. It reports,
per variant, the validation skill and output spread of every seed and what the plan declares
(the fault it tests, its control, its parts), with a linear reference learner's skill on the
same rows (`reference`); `diagnose` judges what they mean.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from audit.inputs import InputArray, Inputs, input_struct
from audit.keras_vocab import (
    ADAPTIVE_OPTIMIZERS,
    BINARY_LOSSES,
    CATEGORICAL_LOSSES,
    DEFAULT_KERNEL_INITS,
    REGRESSION_LOSSES,
    SATURATING,
    is_recurrent,
    typical_lr,
    weighted_layers,
)
from audit.probes import keys, outcomes
from audit.probes.base import NotApplicable, finite_rows, sample_rows
from audit.probes.budget import Length, LengthSettings, plan_length
from audit.probes.config import head_problem
from audit.probes.data import DataSettings, label_checks
from audit.probes.ensemble import dense_stack
from audit.probes.outcomes import Head
from audit.probes.reference import linear_reference
from audit.probes.tfutil import (
    carry_state,
    clone_with_state,
    encode_targets,
    fitting_loss,
    head_of,
    initializer_of,
    make_loss,
    make_optimizer,
    predict,
    subject_head,
)
from audit.probes.trainer import TrainJob, TrainLog, train_together
from audit.results import ProbeResult
from audit.subject import Subject


class RetrainSettings(LengthSettings):
    """The probe's budget and rules. Its length fields (`epochs`, `min_steps`, `max_flops`, ...)
    come from `LengthSettings`: each counterfactual trains as long as the original training did,
    within a FLOP budget (see `budget.plan_length`)."""

    max_seconds: float = 300.0  # budget: wall clock for the whole probe
    seeds: int = 3  # each variant is trained once per seed (at most: racing stops earlier)
    max_rows: int = 2048  # rows used for retraining (train + validation)
    validation_fraction: float = 0.25
    chunks: int = 4  # how often training pauses to check for early success
    early_success_skill: float = 0.95  # a seed this good on validation stops early
    skip_when_healthy: bool = True  # no counterfactuals when the model already does well
    healthy_skill: float = 0.5  # validation skill of the original that counts as doing well
    counterfactuals: tuple[str, ...] | None = None  # restrict to these names (None: all)
    #: racing: every plan trains one seed first; the plans still in contention get further
    #: seeds one at a time, until the confirmation rule is met or can no longer be met
    race: bool = True
    #: plain Dense stacks train every seed stacked in one graph, where a member costs little
    #: next to the step's overhead; they race only from this many parameters, where it does not
    race_stacked_min_params: int = 50_000
    race_drop_skill: float = 0.15  # a first seed below this skill, not beating the baseline's
    race_drop_margin: float = 0.05  # first seed by this margin, drops its plan
    #: the diagnosis's confirmation rule (`diagnose.Thresholds`): a counterfactual must beat
    #: the baseline by `win_margin` in this share of the seeds; racing stops a plan's seeds
    #: as soon as the rule is met, or can no longer be met
    confirm_share: float = 0.66
    win_margin: float = 0.05
    #: the learning-rate search: beyond the first rungs, it walks on in decades while the
    #: farthest rate is the best of its direction and still short of `pairs_below_skill`
    lr_walk_decades: int = 3  # decades walked beyond the first rungs, at most, each way
    lr_min: float = 1e-8  # the search never goes below or above these rates
    lr_max: float = 10.0
    #: two-change counterfactuals: searched when no single change reaches this skill
    pairs_below_skill: float = 0.3
    pair_candidates: int = 4  # the changes that moved skill most (plus the static suspects)
    max_pairs: int = 6  # pairs trained at most, best-scored first
    suspect_bonus: float = 0.1  # a statically suspected change ranks as if it gained this more
    same_rate_factor: float = 2.0  # a rate this close to the typical one needs no rate control
    longer_factor: int = 4  # the own epochs are suspect when the budget is this many times more


@dataclass(frozen=True)
class Plan:
    """One variant: the model's own training with one change (or, for a pair, two).

    Each plan declares what it tests, so `diagnose` reads one table: the fault its change
    addresses (`tests`), the faults it also fixes (named only when static evidence points at
    them), the plan that isolates a second thing the change moves (`control`: Adam also moves
    the rate, so its control is the model's optimizer at its family's typical rate), whether a
    static check already suspects its fault, and for a pair, its two parts."""

    name: str
    change: str
    tests: str | None = None
    also_fixes: tuple[str, ...] = ()
    control: str | None = None
    suspect: bool = False
    parts: tuple[str, ...] = ()
    standardize_inputs: bool = False
    standardize_targets: bool = False
    drop_bad_rows: bool = False
    optimizer: str | None = None
    learning_rate: float | None = None
    clipnorm: float | None = None
    fit_loss: bool = False
    class_weights: bool = False
    architecture: str = "same"  # same | nonsaturating | default_init
    epochs: int | None = None
    relabel: float | None = None  # labels x this, rounded: class ids again (1.0: rounding)

    @property
    def is_rate_rung(self) -> bool:
        """A rung of the learning-rate search: the own optimizer at another rate, nothing else."""
        return (self.learning_rate is not None and not self.parts and self.optimizer is None
                and self.clipnorm is None)

    def info(self) -> dict[str, Any]:
        """What `diagnose` needs to know about the plan, for the probe's details."""
        return {keys.CHANGE: self.change, keys.TESTS: self.tests,
                keys.ALSO_FIXES: list(self.also_fixes), keys.CONTROL: self.control,
                keys.PARTS: list(self.parts), keys.LEARNING_RATE: self.learning_rate}


#: the fields a change sets; two plans combine when they set different ones
CHANGE_FIELDS = ("standardize_inputs", "standardize_targets", "drop_bad_rows", "optimizer",
                 "learning_rate", "clipnorm", "fit_loss", "class_weights", "architecture",
                 "relabel")


@dataclass
class Split:
    """Training and validation rows (validation rows are always finite)."""

    x_train: Inputs
    y_train: np.ndarray
    x_val: Inputs
    y_val: np.ndarray
    full_rows: int

    def keep_train_rows(self, rows: int) -> Split:
        """The split with only its first `rows` training rows (they are in random order)."""
        if rows >= len(self.x_train):
            return self
        return replace(self, x_train=self.x_train.take(np.arange(rows)),
                       y_train=self.y_train[:rows])


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


# ---------------------------------------------------------------- planning


def lr_ladder(optimizer: str, lr: float) -> list[float]:
    """Two learning rates to try: toward the family's typical rate, or one decade each way."""
    typical = typical_lr(optimizer)
    if lr <= typical / 10:
        return [typical, typical * 10]
    if lr >= typical * 10:
        return [typical, typical / 10]
    return [lr * 10, lr / 10]


def _initializer_name(init: Any) -> str:
    return type(init).__name__.lower().replace("_", "")


def has_unusual_init(model: Any) -> bool:
    """True when some layer uses an initializer other than Keras' usual defaults."""
    for layer in weighted_layers(model):
        kernel = getattr(layer, "kernel_initializer", None)
        bias = getattr(layer, "bias_initializer", None)
        if kernel is not None and _initializer_name(kernel) not in DEFAULT_KERNEL_INITS:
            return True
        if bias is not None and _initializer_name(bias) not in {"zeros"}:
            return True
    return False


def _lr_plan(t_lr: float, lr: float, suspect: bool) -> Plan:
    ratio = lr / t_lr
    up = ratio > 1
    return Plan(f"lr_{'up' if up else 'down'}_x{ratio:.3g}",
                f"learning rate {t_lr:.3g} -> {lr:.3g}",
                tests="lr_too_low" if up else "lr_too_high",
                also_fixes=("undertrained",) if up else ("exploding_gradient", "dead_relu"),
                suspect=suspect, learning_rate=lr)


def lr_walk(plans: list[Plan], skill: dict[str, float], own_lr: float,
            settings: RetrainSettings) -> list[Plan]:
    """The learning-rate search's next rungs, like an LR range test: in a direction whose
    farthest rate beats everything nearer (and the baseline) by `win_margin` but still has
    no skill, one decade farther, until training starts moving; down, also while training
    still diverges. Once the walk reaches a rate that works past one that does not, and it is
    the best change so far, one rung half a decade back refines it. The walk stops once
    another change restores the model, unless the model's own training diverges.
    `skill` holds each tried plan's mean skill (NaN when it diverged)."""

    def value(name: str) -> float:
        v = skill.get(name, float("nan"))
        return v if np.isfinite(v) else -np.inf  # diverged: worse than any finite skill

    rated = [p for p in plans if p.is_rate_rung]
    works, margin = settings.pairs_below_skill, settings.win_margin
    best_change = max((value(p.name) for p in plans if p.name != keys.BASELINE and not p.parts),
                      default=-np.inf)
    diverged = value(keys.BASELINE) == -np.inf
    walked: list[Plan] = []
    for up in (True, False):
        side = sorted((p for p in rated if (p.learning_rate > own_lr) == up),
                      key=lambda p: abs(math.log10(p.learning_rate / own_lr)))
        if not side:
            continue
        far = side[-1]
        rest = max([value(keys.BASELINE)] + [value(p.name) for p in side[:-1]])
        decades = abs(math.log10(far.learning_rate / own_lr))
        nearest = abs(math.log10(side[0].learning_rate / own_lr))
        rate = far.learning_rate * (10.0 if up else 0.1)
        improving = value(far.name) > rest + margin or (rest == -np.inf < value(far.name))
        still_diverging = not up and diverged and value(far.name) == -np.inf
        if ((improving and (best_change < works or diverged)) or still_diverging) and (
                value(far.name) < works
                and decades - nearest < settings.lr_walk_decades - 1e-9
                and settings.lr_min <= rate <= settings.lr_max):
            walked.append(replace(_lr_plan(own_lr, rate, suspect=False), epochs=far.epochs))
        elif len(side) >= 2:
            before = side[-2]
            gap = abs(math.log10(far.learning_rate / before.learning_rate))
            if (value(far.name) >= max(works, best_change - margin)
                    and value(before.name) < works and gap > 0.75):
                middle = math.sqrt(far.learning_rate * before.learning_rate)
                walked.append(replace(_lr_plan(own_lr, middle, suspect=False),
                                      epochs=far.epochs))
    return walked


def label_repair(subject: Subject, split: Split) -> tuple[float, str] | None:
    """The mechanical repair of labels a classification loss cannot read: class ids divided
    by a scale are multiplied back, floats near integers rounded (factor, description)."""
    if subject.training.loss not in BINARY_LOSSES | CATEGORICAL_LOSSES:
        return None
    checks = label_checks(split.y_train, subject.task, DataSettings())
    scale = checks[keys.Data.LABEL_FRACTION_SCALE.metric]
    if np.isfinite(scale):
        return float(scale), f"labels x {scale:.0f} (class ids again)"
    if checks[keys.Data.LABEL_NEAR_INTEGER.metric] > 0:
        return 1.0, "labels rounded to the nearest integer"
    return None


def plan_changes(subject: Subject, split: Split, settings: RetrainSettings) -> list[Plan]:
    """The baseline plus every counterfactual that applies to this subject, each declaring
    the fault it tests, and the controls that isolate changes that move two things. Lengths
    are not set yet (`with_length` sets them); a change that cannot apply is never planned."""
    t = subject.training
    plans = [Plan(keys.BASELINE, "the model's own training config")]
    scalable = scalable_inputs(split.x_train)
    if scalable:
        with np.errstate(all="ignore"):
            stats = [_moments(a) for a in scalable]
        mean = np.concatenate([m for m, _ in stats])
        std = np.concatenate([s for _, s in stats])
        if np.nanmax(np.abs(mean)) > 0.5 or np.nanmax(std) > 2 or np.nanmin(std) < 0.5:
            names = ", ".join(a.name for a in scalable) if len(scalable) > 1 else "inputs"
            plans.append(Plan("standardize_inputs", f"{names} standardized per feature",
                              tests="unscaled_inputs", suspect=True, standardize_inputs=True))
    if subject.task == "regression" and t.loss in REGRESSION_LOSSES:  # a class loss reads ids
        y = split.y_train[np.isfinite(split.y_train)]
        if y.size and (abs(float(y.mean())) > 1 or not 0.5 <= float(y.std()) <= 2):
            plans.append(Plan("standardize_targets", "targets standardized",
                              tests="unscaled_targets", suspect=True, standardize_targets=True))
    relabel = label_repair(subject, split)
    if relabel is not None:
        plans.append(Plan("repair_labels", relabel[1], tests="bad_data", suspect=True,
                          relabel=relabel[0]))
    if not finite_rows(split.x_train, split.y_train).all():
        plans.append(Plan("drop_bad_rows", "rows with NaN/inf dropped", tests="bad_data",
                          suspect=True, drop_bad_rows=True))
    typical = typical_lr(t.optimizer)
    far = not 1 / 10 < t.learning_rate / typical < 10
    for lr in lr_ladder(t.optimizer, t.learning_rate):
        plans.append(_lr_plan(t.learning_rate, lr, suspect=far and lr == typical))
    if t.optimizer not in ADAPTIVE_OPTIMIZERS:
        # Adam also moves the rate: its control is the own optimizer at its typical rate
        control = keys.BASELINE
        if not 1 / settings.same_rate_factor <= t.learning_rate / typical <= (
                settings.same_rate_factor):
            at_typical = [p for p in plans if p.learning_rate == typical]
            if not at_typical:
                at_typical = [replace(_lr_plan(t.learning_rate, typical, far), name="lr_typical")]
                plans += at_typical
            control = at_typical[0].name
        plans.append(Plan("adam", f"{t.optimizer} -> Adam(1e-3)", tests="optimizer_stalled",
                          also_fixes=("vanishing_gradient", "saturated_activations"),
                          control=control, optimizer="adam", learning_rate=1e-3))
    if head_problem(subject) is not None:
        loss, _, activation = fitting_loss(subject.task)
        # the control is the baseline: the same network and data with the own head and loss
        plans.append(Plan("fit_loss", f"{t.loss} -> {loss} with a {activation} head",
                          tests="loss_mismatch", control=keys.BASELINE, suspect=True,
                          fit_loss=True))
    if subject.task != "regression":
        counts = np.bincount(split.y_train.astype(np.int64), minlength=subject.n_classes)
        present = counts[counts > 0]
        if len(present) >= 2 and present.min() / present.max() <= 0.5:
            plans.append(Plan("class_weights", "balanced class weights",
                              tests="class_imbalance", suspect=True, class_weights=True))
    hidden = [getattr(layer, "activation", None) for layer in weighted_layers(subject.model)[:-1]
              if not is_recurrent(layer)]
    names = {getattr(a, "__name__", "") for a in hidden}
    if names & (SATURATING | {"relu"}):
        plans.append(Plan("nonsaturating", "hidden sigmoid/tanh -> ReLU, ReLU -> LeakyReLU",
                          tests="saturated_activations",
                          also_fixes=("dead_relu", "vanishing_gradient"),
                          architecture="nonsaturating"))
    if has_unusual_init(subject.model):
        plans.append(Plan("default_init", "Keras' default initializers (Glorot, zero bias)",
                          also_fixes=("dead_relu", "exploding_gradient", "saturated_activations",
                                      "vanishing_gradient"),
                          suspect=True, architecture="default_init"))
    if len(weighted_layers(subject.model)) >= 3 and not dict(t.optimizer_config).get("clipnorm"):
        plans.append(Plan("clip_gradients", "gradients clipped to norm 1",
                          tests="exploding_gradient", also_fixes=("lr_too_high",), clipnorm=1.0))
    if settings.counterfactuals is not None:
        plans = [p for p in plans if p.name == keys.BASELINE or p.name in settings.counterfactuals]
    return order_plans(plans)


def order_plans(plans: list[Plan]) -> list[Plan]:
    """The baseline first, then the statically suspected changes: when the time budget runs
    out, the likely fixes have trained."""
    return sorted(plans, key=lambda p: (p.name != keys.BASELINE, not p.suspect))


def length_for(subject: Subject, split: Split, plans: int,
               settings: RetrainSettings) -> Length:
    """How long each of `plans` plans trains (and on how many rows), from the original
    training's length and the FLOP budget over the full plan x seed grid."""
    return plan_length(subject.model.count_params(), len(split.x_train), split.full_rows,
                       subject.training.batch_size, subject.training.epochs,
                       plans * settings.seeds, settings)


def with_length(plans: list[Plan], length: Length, settings: RetrainSettings) -> list[Plan]:
    """Every plan at the chosen length, plus `train_longer` when the original training was
    shorter than a default-length one (suspect when far shorter)."""
    out = [replace(p, epochs=length.epochs) if p.epochs is None else p for p in plans]
    wanted = settings.counterfactuals is None or "train_longer" in settings.counterfactuals
    if length.own_steps is not None and length.longer_epochs > length.epochs and wanted:
        out.append(Plan("train_longer", f"{length.epochs} -> {length.longer_epochs} epochs",
                        tests="undertrained",
                        suspect=length.longer_epochs >= settings.longer_factor * length.epochs,
                        epochs=length.longer_epochs))
    return out


def plan_variants(subject: Subject, split: Split, settings: RetrainSettings) -> list[Plan]:
    """Every plan with its length (for a split whose training rows are already final)."""
    changes = plan_changes(subject, split, settings)
    return with_length(changes, length_for(subject, split, len(changes) + 1, settings), settings)


# ---------------------------------------------------------------- two-change plans


def combine(first: Plan, second: Plan) -> Plan | None:
    """Both plans' changes at once, or None when they change the same thing (two rates, two
    architectures, Adam and a rate)."""
    defaults = Plan("", "")
    merged: dict[str, Any] = {}
    for name in CHANGE_FIELDS:
        a, b = getattr(first, name), getattr(second, name)
        default = getattr(defaults, name)
        if a != default and b != default and a != b:
            return None
        merged[name] = a if a != default else b
    if all(merged[name] == getattr(defaults, name) for name in CHANGE_FIELDS) and (
            first.epochs == second.epochs):
        return None
    return Plan(keys.pair_name(first.name, second.name), f"{first.change} and {second.change}",
                parts=(first.name, second.name),
                epochs=max(first.epochs or 0, second.epochs or 0) or None, **merged)


def pair_plans(singles: list[Plan], skill: dict[str, float],
               settings: RetrainSettings) -> list[Plan]:
    """Greedy two-change search: the changes that moved skill most (mean over the seeds each
    ran, against the baseline) plus the statically suspected ones, paired, best pairs first
    (the sum of both parts' gains, a suspect counting `suspect_bonus` more), at most
    `max_pairs`. Only pairs of changes that touch different things are formed."""
    base = skill.get(keys.BASELINE, 0.0)

    def gain(plan: Plan) -> float:
        return skill.get(plan.name, base) - base + (settings.suspect_bonus if plan.suspect
                                                     else 0.0)

    changes = [p for p in singles if p.name != keys.BASELINE]
    ranked = sorted(changes, key=gain, reverse=True)
    chosen = ranked[:settings.pair_candidates]
    chosen += [p for p in ranked[settings.pair_candidates:] if p.suspect]
    scored = []
    for i, first in enumerate(chosen):
        for second in chosen[i + 1:]:
            pair = combine(first, second)
            if pair is not None:
                scored.append((gain(first) + gain(second), pair))
    scored.sort(key=lambda item: item[0], reverse=True)
    return [pair for _, pair in scored[:settings.max_pairs]]


# ---------------------------------------------------------------- building


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
    return Split(x.take(train), subject.y[train], x.take(val), subject.y[val], rows)


def _clone(model: Any, architecture: str) -> Any:
    import keras

    last = model.layers[-1].name

    def change(layer: Any) -> Any:
        config = layer.get_config()
        if architecture == "default_init":
            if "kernel_initializer" in config:
                config["kernel_initializer"] = "glorot_uniform"
            if "bias_initializer" in config:
                config["bias_initializer"] = "zeros"
        elif architecture == "nonsaturating" and layer.name != last and not is_recurrent(layer):
            act = config.get("activation")
            if act in SATURATING:
                config["activation"] = "relu"
                if "kernel_initializer" in config:
                    config["kernel_initializer"] = "he_uniform"
            elif act == "relu":
                config["activation"] = "leaky_relu"
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




def _with_head(model: Any, units: int, activation: str) -> Any:
    """`model` with its last weighted layer replaced by Dense(units, activation)."""
    import keras

    layers = model.layers
    k = max(i for i, layer in enumerate(layers) if layer.trainable_weights)
    head = keras.layers.Dense(units, activation=activation)
    if isinstance(model, keras.Sequential) and len(model.inputs[0].shape) == 2:
        # stays a Sequential, so the trainer can stack it with its seeds
        return keras.Sequential([keras.Input(model.inputs[0].shape[1:]), *layers[:k], head])
    features = layers[k].input  # what the old head read
    if isinstance(features, (list, tuple)):
        features = keras.layers.Concatenate()(list(features))
    if len(features.shape) > 2:
        features = keras.layers.Flatten()(features)
    return keras.Model(input_struct(model), head(features))


def scalable_inputs(x: Inputs) -> list[InputArray]:
    """Inputs a standardization counterfactual may change: numeric columns and tensors the
    model does not already scale itself (categories and token ids are never scaled)."""
    return [a for a in x.arrays if a.is_float and a.normalized is False]


def _moments(array: InputArray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per numeric column, or of a whole tensor input (an image is one thing)."""
    values = array.values
    flat = values.reshape(len(values), -1) if array.kind == "numeric" else values.reshape(-1, 1)
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
    return mean, std


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
        mean, std = _moments(array)
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
    model = _clone(subject.model, plan.architecture)
    if plan.fit_loss:
        _, units, activation = fitting_loss(subject.task)
        if units is None:
            units = subject.n_classes if subject.task == "multiclass" else split.y_train.reshape(
                len(split.y_train), -1).shape[1]
        model = _with_head(model, units, activation)
    return model


def build_variants(subject: Subject, split: Split, plans: list[Plan]) -> list[Variant]:
    """Every plan built; plans with the same architecture share one model."""
    models: dict[tuple[str, bool], Any] = {}
    variants = []
    for plan in plans:
        key = (plan.architecture, plan.fit_loss)
        if key not in models:
            models[key] = plan_model(subject, split, plan)
        variants.append(build_variant(subject, split, plan, models[key]))
    return variants


def build_variant(subject: Subject, split: Split, plan: Plan, model: Any) -> Variant:
    """Prepare one plan's data, loss and optimizer for `model` (from `plan_model`); the
    weights come per seed, see `seeded_jobs`."""
    t = subject.training
    x_tr, y_tr, x_val, y_val = split.x_train, split.y_train, split.x_val, split.y_val
    if plan.drop_bad_rows:
        keep = finite_rows(x_tr, y_tr)
        x_tr, y_tr = x_tr.take(keep), y_tr[keep]
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


@dataclass
class Prepared:
    """Everything the probe decides before it trains: the rows, the plans at their length, the
    seeds, and the shipped model's own outcome on the validation rows."""

    split: Split
    plans: list[Plan]
    length: Length
    seeds: list[int]
    original_skill: float
    original_spread: float
    healthy: bool  # the shipped model already does well: no counterfactuals are needed

    def grid(self, subject: Subject) -> list[tuple[Variant, TrainJob]]:
        """Every plan once per seed, built: the full grid racing chooses from."""
        variants = build_variants(subject, self.split, self.plans)
        return [(v, job) for v in variants for job in seeded_jobs(v, self.seeds)]


def prepare(subject: Subject, settings: RetrainSettings) -> Prepared:
    """Split the rows, plan the counterfactuals and their length (cutting the training rows
    when the FLOP budget asks for it), and score the shipped model."""
    split = make_split(subject, settings)
    changes = plan_changes(subject, split, settings)
    length = length_for(subject, split, len(changes) + 1, settings)
    split = split.keep_train_rows(length.train_rows)
    skill, spread = original_outcome(subject, split)
    return Prepared(split=split, plans=with_length(changes, length, settings), length=length,
                    seeds=[settings.seed * 1000 + s for s in range(settings.seeds)],
                    original_skill=skill, original_spread=spread,
                    healthy=bool(np.isfinite(skill) and skill >= settings.healthy_skill))


def races(subject: Subject, settings: RetrainSettings) -> bool:
    """Whether this model's plans race (see `RetrainSettings.race_stacked_min_params`)."""
    if not settings.race or settings.seeds < 2:
        return False
    return (dense_stack(subject.model) is None
            or subject.model.count_params() >= settings.race_stacked_min_params)


class Race:
    """Trains plans seed by seed and keeps every run.

    Without racing, every plan trains every seed at once. With it, every plan trains its
    first seed, and one that shows no skill and no gain over the baseline by half its length
    stops there (successive halving; statically suspected plans always finish); a plan with
    no skill and no gain over the baseline's first seed drops out;
    the others get one more seed per round while the confirmation rule is still undecided
    (not yet met, and still reachable with the seeds left). The baseline trains each seed
    some plan needs."""

    def __init__(self, subject: Subject, settings: RetrainSettings, seeds: list[int],
                 deadline: float, racing: bool) -> None:
        self.subject, self.settings, self.seeds = subject, settings, seeds
        self.deadline, self.racing = deadline, racing
        self.runs: list[tuple[Variant, TrainJob]] = []
        self.logs: list[TrainLog] = []
        self.dropped: dict[str, str] = {}
        self.rounds = 0
        self.baseline: Variant | None = None
        self._raw: dict[tuple[int, int], float] = {}  # (id(variant), seed) -> skill (NaN: diverged)
        self._now: dict[int, float] = {}  # id(variant) -> its latest clipped skill in training
        self._graphs: dict[tuple[Any, ...], Any] = {}  # traced once, reused by every round

    def run(self, variants: list[Variant]) -> None:
        """Train `variants` (the baseline among them, or trained before) as racing allows."""
        for v in variants:
            if v.plan.name == keys.BASELINE:
                self.baseline = v
        if not self.racing:
            self._train([(v, seed) for v in variants for seed in self.seeds])
            return
        self._round(variants, self.seeds[0])
        alive = [v for v in variants if v is not self.baseline and self._in_race(v)]
        for k, seed in enumerate(self.seeds[1:], start=1):
            alive = [v for v in alive if self._undecided(v, k)]
            if not alive or time.monotonic() > self.deadline:
                break
            self._round(alive, seed)

    def skills(self, variant: Variant, raw: bool = False) -> list[float]:
        """The variant's skill per seed trained: clipped to [-1, 1] (a diverged seed counts
        0), or `raw` (NaN where it diverged)."""
        return [self._raw[(id(variant), s)] if raw else self._skill(variant, s)
                for s in self.seeds if (id(variant), s) in self._raw]

    def _skill(self, variant: Variant, seed: int) -> float:
        return _clipped(self._raw[(id(variant), seed)])

    def _round(self, variants: list[Variant], seed: int) -> None:
        pending = [(v, seed) for v in variants if (id(v), seed) not in self._raw]
        base = self.baseline
        if base is not None and (id(base), seed) not in self._raw and base not in variants:
            pending.insert(0, (base, seed))
        self._train(pending)

    def _train(self, pending: list[tuple[Variant, int]]) -> None:
        if not pending:
            return
        self.rounds += 1
        runs = [(v, job) for v, seed in pending for job in seeded_jobs(v, [seed])]
        settings, subject = self.settings, self.subject

        def should_stop(i: int, log: TrainLog) -> str | None:
            variant, job = runs[i]
            skill_now, _ = score(variant, log, subject)
            self._now[id(variant)] = _clipped(skill_now)
            if skill_now >= settings.early_success_skill:
                return "early_success"
            return "race_halved" if self._halved(variant, job, log) else None

        logs = train_together([job for _, job in runs], subject.training.batch_size,
                              chunks=settings.chunks, deadline=self.deadline,
                              should_stop=should_stop, graphs=self._graphs)
        for (variant, job), log in zip(runs, logs, strict=True):
            self._raw[(id(variant), job.seed)] = score(variant, log, subject)[0]
        self.runs += runs
        self.logs += logs

    def _halved(self, variant: Variant, job: TrainJob, log: TrainLog) -> bool:
        """Successive halving within the first seed: past half its epochs, a plan no static
        check suspects, with no skill and no gain over the baseline at that point, stops."""
        if (not self.racing or job.seed != self.seeds[0] or variant is self.baseline
                or variant.plan.suspect or log.epochs_run * 2 < job.epochs
                or self.baseline is None or id(self.baseline) not in self._now):
            return False
        now = self._now[id(variant)]
        return (now < self.settings.race_drop_skill
                and now - self._now[id(self.baseline)] < self.settings.race_drop_margin)

    def _in_race(self, variant: Variant) -> bool:
        """After its first seed: some skill, or a gain over the baseline's first seed."""
        first = self._skill(variant, self.seeds[0])
        base = (self._skill(self.baseline, self.seeds[0])
                if self.baseline is not None and (id(self.baseline), self.seeds[0]) in self._raw
                else 0.0)
        keep = (first >= self.settings.race_drop_skill
                or first - base >= self.settings.race_drop_margin)
        if not keep:
            log = next(log for (v, job), log in zip(self.runs, self.logs, strict=True)
                       if v is variant and job.seed == self.seeds[0])
            when = (f"at epoch {log.epochs_run} of {variant.plan.epochs} of its first seed"
                    if log.stopped == "race_halved" else "after its first seed")
            self.dropped[variant.plan.name] = (
                f"{when} (of {len(self.seeds)}): skill {first:.2f}, no gain over the baseline")
        return keep

    def _undecided(self, variant: Variant, done: int) -> bool:
        """The confirmation rule is neither met nor out of reach after `done` seeds."""
        if self.baseline is None:
            return False
        wins = sum(self._skill(variant, s) - self._skill(self.baseline, s)
                   > self.settings.win_margin for s in self.seeds[:done])
        need = math.ceil(self.settings.confirm_share * len(self.seeds) - 1e-9)
        return wins < need and done - wins <= len(self.seeds) - need


def run(subject: Subject, settings: RetrainSettings) -> ProbeResult:
    if not subject.retrainable:
        raise NotApplicable(subject.not_retrainable)
    started = time.monotonic()
    prep = prepare(subject, settings)
    split = prep.split
    metrics: dict[str, float] = {keys.Retrain.ORIGINAL_SKILL.metric: prep.original_skill,
                                 keys.Retrain.ORIGINAL_SPREAD.metric: prep.original_spread,
                                 "train_rows": float(len(split.x_train)),
                                 "validation_rows": float(len(split.x_val)),
                                 **prep.length.metrics()}
    # what the data allows, by a linear learner on the same rows: the yardstick a weak
    # signal's counterfactuals are judged by, and a healthy model's headroom
    reference = linear_reference(split.x_train, split.y_train, split.x_val, split.y_val,
                                 subject.task, subject.n_classes)
    metrics[keys.Retrain.LINEAR_REFERENCE.metric] = reference
    metrics[keys.Retrain.ATTAINABLE.metric] = reference
    metrics["reference.headroom"] = reference - _clipped(prep.original_skill)
    if settings.skip_when_healthy and prep.healthy:
        metrics[keys.Retrain.SKIPPED.metric] = 1.0
        return ProbeResult(probe="retrain", metrics=metrics,
                           details={"skipped": "the model already does well on validation"})
    racing = races(subject, settings)
    race = Race(subject, settings, prep.seeds, started + settings.max_seconds, racing)
    variants = build_variants(subject, split, prep.plans)
    race.run(variants)
    while time.monotonic() < race.deadline:  # the learning-rate search walks on
        tried = {v.plan.name: _diverged_nan(race.skills(v, raw=True)) for v in variants}
        walked = [p for p in lr_walk([v.plan for v in variants], tried,
                                     subject.training.learning_rate, settings)
                  if p.name not in tried]
        if not walked:
            break
        more = build_variants(subject, split, walked)
        race.run(more)
        variants += more
    plans = [v.plan for v in variants]
    single_skill = {v.plan.name: _nanmean(race.skills(v)) for v in variants}
    best_change = max((_clipped(value) for name, value in single_skill.items()
                       if name != keys.BASELINE), default=0.0)
    base_skill = single_skill.get(keys.BASELINE, float("nan"))
    pairs: list[Plan] = []
    if best_change < settings.pairs_below_skill and time.monotonic() < race.deadline:
        pairs = pair_plans(plans, {k: _clipped(v) for k, v in single_skill.items()}, settings)
    pair_variants = build_variants(subject, split, pairs) if pairs else []
    singles_trained = len(race.runs)
    if pair_variants:
        race.run(pair_variants)
    details: dict[str, Any] = {keys.VARIANTS: {}}
    record(variants + pair_variants, race, subject, metrics, details)
    metrics["lr_search.rates"] = float(sum(p.is_rate_rung for p in plans))
    n_seeds = len(prep.seeds)
    metrics[keys.Retrain.PAIRS_TRIED.metric] = float(len(pairs))
    metrics[keys.Retrain.PAIR_TRAININGS.metric] = float(len(race.runs) - singles_trained)
    metrics[keys.Retrain.BASELINE_REPRODUCES.metric] = float(
        not (np.isfinite(base_skill) and base_skill >= settings.healthy_skill))
    metrics["race.on"] = float(racing)
    metrics["race.rounds"] = float(race.rounds)
    metrics["race.dropped_plans"] = float(len(race.dropped))
    metrics["variants"] = float(len(plans) + len(pairs))
    metrics[keys.Retrain.TRAININGS.metric] = float(len(race.runs))
    metrics[keys.Retrain.FULL_GRID_TRAININGS.metric] = float((len(plans) + len(pairs)) * n_seeds)
    metrics["epochs_trained"] = float(sum(log.epochs_run for log in race.logs))
    metrics["epochs_full_grid"] = float(
        sum((p.epochs or 0) * n_seeds for p in plans + pairs))
    metrics[keys.Retrain.TIME_BUDGET_HIT.metric] = float(
        any(log.stopped == "time_budget" for log in race.logs))
    return ProbeResult(probe="retrain", metrics=metrics, details=details)


def _clipped(value: float) -> float:
    return 0.0 if not np.isfinite(value) else max(-1.0, min(1.0, value))


def record(variants: list[Variant], race: Race, subject: Subject, metrics: dict[str, float],
           details: dict[str, Any]) -> None:
    """Each variant's per-seed skills and summaries into the probe's metrics and details."""
    for variant in variants:
        plan = variant.plan
        mine = [(job, log) for (v, job), log in zip(race.runs, race.logs, strict=True)
                if v is variant]
        if not mine:
            continue
        skills, spreads = zip(*(score(variant, log, subject) for _, log in mine),
                              strict=True)
        prefix = f"{plan.name}."
        metrics[prefix + "skill_mean"] = _nanmean(skills)
        metrics[prefix + "skill_min"] = _nanmin(skills)
        metrics[prefix + "spread_mean"] = _nanmean(spreads)
        metrics[prefix + "diverged"] = float(np.mean([not np.isfinite(s) for s in skills]))
        metrics[prefix + "epochs"] = float(max(log.epochs_run for _, log in mine))
        for (job, _), s in zip(mine, skills, strict=True):
            metrics[keys.seed_skill(plan.name, job.seed)] = float(s)
        metrics[prefix + "seeds"] = float(len(mine))
        details[keys.VARIANTS][plan.name] = {
            **plan.info(),
            "stopped": [log.stopped for _, log in mine],
            "final_loss": [log.losses[-1] if log.losses else None for _, log in mine],
            **({"dropped": race.dropped[plan.name]} if plan.name in race.dropped else {}),
        }


def _diverged_nan(values: list[float]) -> float:
    """The mean skill, NaN when any seed diverged (the rate search reads divergence)."""
    return float(np.mean(values)) if values and np.isfinite(values).all() else float("nan")


def _nanmean(values: Any) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _nanmin(values: Any) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmin(arr)) if np.isfinite(arr).any() else float("nan")
