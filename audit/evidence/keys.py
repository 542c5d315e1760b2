"""The metric and detail keys shared by the probes that write them and `diagnose` that reads
them: one constant each, so a rename fails a test (tests/test_probe_keys.py runs the probes and
checks every key below is written) instead of silently turning a rule's input into NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from audit.evidence.results import ProbeResult


@dataclass(frozen=True)
class Key:
    """One metric of one probe."""

    probe: str
    metric: str

    def read(self, results: dict[str, ProbeResult]) -> float:
        """The value, or NaN when the probe did not run, failed or did not measure it."""
        result = results.get(self.probe)
        if result is None or result.status != "ok":
            return float("nan")
        return result.get(self.metric)


class Data:
    ROWS = Key("data", "rows")
    FEATURES = Key("data", "features")
    BAD_ROWS = Key("data", "bad_rows")
    BAD_ROW_FRACTION = Key("data", "bad_row_fraction")
    NAN_CELLS = Key("data", "nan_cells")
    INF_CELLS = Key("data", "inf_cells")
    MALFORMED_CELLS = Key("data", "malformed_cells")
    CONSTANT_COLUMNS = Key("data", "constant_columns")
    FEATURE_SCALE_LOG10 = Key("data", "feature_scale_log10")
    FEATURE_STD_RATIO = Key("data", "feature_std_ratio")
    FEATURE_ABS_MAX = Key("data", "feature_abs_max")
    LABEL_MEAN = Key("data", "label_mean")  # regression only
    LABEL_STD = Key("data", "label_std")  # regression only
    IMBALANCE_RATIO = Key("data", "imbalance_ratio")  # classification only
    MINORITY_FRACTION = Key("data", "minority_fraction")  # classification only
    # label sanity: what the labels look like against what the loss expects
    LABEL_DISTINCT = Key("data", "label_distinct")
    LABEL_FRACTION_SCALE = Key("data", "label_fraction_scale")  # k: labels are ids / k
    LABEL_NEAR_INTEGER = Key("data", "label_near_integer_fraction")
    LABEL_ONE_HOT_BAD_ROWS = Key("data", "label_one_hot_bad_rows")
    LABEL_CLASS_IDS = Key("data", "label_looks_like_class_ids")


class Config:
    OUTPUT_UNITS = Key("config", "output_units")
    LOSS_FITS_LABELS = Key("config", "loss_fits_labels")
    LOSS_IS_CLASSIFICATION = Key("config", "loss_is_classification")
    LEARNING_RATE = Key("config", "learning_rate")
    LR_LOG10_VS_TYPICAL = Key("config", "lr_log10_vs_typical")
    OPTIMIZER_IS_SGD = Key("config", "optimizer_is_sgd")
    TRAIN_EPOCHS = Key("config", "train_epochs")
    WEIGHT_PENALTY = Key("config", "weight_penalty_max")  # strongest l1 + l2 regularizer factor
    DROPOUT = Key("config", "dropout_max")  # highest dropout rate


class Sensitivity:
    SKILL = Key("sensitivity", "skill")
    SPREAD_RATIO = Key("sensitivity", "spread_ratio")
    NAN_OUTPUT_FRACTION = Key("sensitivity", "nan_output_fraction")
    DISTINCT_CLASSES = Key("sensitivity", "distinct_predicted_classes")  # classification only


class Activations:
    DEAD_MAX = Key("activations", "dead_fraction_max")
    DEAD_MEAN = Key("activations", "dead_fraction_mean")
    SATURATED_MAX = Key("activations", "saturated_fraction_max")
    SATURATED_MEAN = Key("activations", "saturated_fraction_mean")


class Gradients:
    NONFINITE_WEIGHTS = Key("gradients", "nonfinite_weights")
    RATIO_FIRST_LAST = Key("gradients", "grad_ratio_first_last")
    NORM_FIRST = Key("gradients", "grad_norm_first")
    NORM_MAX = Key("gradients", "grad_norm_max")
    DEPTH = Key("gradients", "depth")


class Retrain:
    ORIGINAL_SKILL = Key("retrain", "original.skill")
    ORIGINAL_SPREAD = Key("retrain", "original.spread")
    SKIPPED = Key("retrain", "counterfactuals_skipped")
    TIME_BUDGET_HIT = Key("retrain", "time_budget_hit")
    TRAININGS = Key("retrain", "trainings")
    FULL_GRID_TRAININGS = Key("retrain", "trainings_full_grid")  # what racing chose from
    BASELINE_REPRODUCES = Key("retrain", "baseline.reproduces")  # own config still fails
    CUT_BY_BUDGET = Key("retrain", "length.cut_by_budget")
    LINEAR_REFERENCE = Key("retrain", "reference.linear_skill")  # what a linear learner gets
    ATTAINABLE = Key("retrain", "reference.attainable_skill")  # the best reference learner
    HEADROOM = Key("retrain", "reference.headroom")  # the attainable skill minus the model's
    # confident learning over the reference learner (classification only, `label_noise`)
    LABEL_ISSUE_SHARE = Key("retrain", "reference.label_issue_share")  # rows whose label the
    LABEL_ISSUES = Key("retrain", "reference.label_issues")  # data disputes: share and count
    #: the overlap the reference shows by itself: its out-of-fold error on the given labels,
    #: and the mean probability it gives the disputed rows' own labels
    REFERENCE_ERROR = Key("retrain", "reference.label_error")
    DISPUTED_LABEL_PROBABILITY = Key("retrain", "reference.disputed_label_probability")
    LABEL_ROWS_CHECKED = Key("retrain", "reference.label_rows_checked")
    LENGTH_STEPS = Key("retrain", "length.steps")
    WANTED_STEPS = Key("retrain", "length.wanted_steps")
    PAIRS_TRIED = Key("retrain", "pairs.tried")
    PAIR_TRAININGS = Key("retrain", "pairs.trainings")


#: each probe's key namespace, by probe name: one per registered probe (a test holds them to
#: `audit.probes.PROBES`, so a new probe cannot be half registered)
NAMESPACES: dict[str, type] = {"data": Data, "config": Config, "sensitivity": Sensitivity,
                               "activations": Activations, "gradients": Gradients,
                               "retrain": Retrain}
#: the metric row that carries a probe's `details` (its value NaN, the details in `detail`)
DETAILS = "details"


# ---------------------------------------------------------------- retrain per-plan keys

#: details["variants"][plan] holds what each `audit.faults.Plan` declares, under these names
VARIANTS = "variants"
CHANGE = "change"
TESTS = "tests"  # the fault the plan's change addresses (None: baseline, control)
ALSO_FIXES = "also_fixes"  # faults the change also fixes, named only with static support
CONTROL = "control"  # the plan that isolates this plan's second change ("baseline" or a name)
PARTS = "parts"  # a pair: the two single plans it combines
LEARNING_RATE = "learning_rate"  # the rate the plan trains at (None: the model's own)
WORKS_AROUND = "works_around"  # faults upstream that this change only works around
MOVES = "moves"  # the plan's fields it sets away from the own training (Plan.moves)
OUTRANKS = "outranks"  # faults downstream whose changes only compensate for this one's cause
RATE_RUNG = "rate_rung"  # "up"/"down": a rung of the learning-rate search (None: not one)
BASELINE = "baseline"
PAIR_JOIN = "+"
#: details[LABEL_ISSUE_ROWS]: example rows whose label the data disputes, most disputed first
LABEL_ISSUE_ROWS = "label_issue_rows"
LABEL_ISSUE_SECONDS = "label_issue_seconds"  # its time (a detail: metrics are deterministic)

_SEED_SKILL = re.compile(r"^(?P<plan>.+)\.skill\.seed(?P<seed>-?\d+)$")


def seed_skill(plan: str, seed: int) -> str:
    """The metric holding `plan`'s validation skill under `seed`."""
    return f"{seed_skill_prefix(plan)}{seed}"


def parse_seed_skill(metric: str) -> tuple[str, int] | None:
    """(plan, seed) of a `seed_skill` metric, None for any other metric."""
    match = _SEED_SKILL.match(metric)
    return (match["plan"], int(match["seed"])) if match else None


def pair_name(first: str, second: str) -> str:
    return f"{first}{PAIR_JOIN}{second}"


def seed_skill_prefix(plan: str) -> str:
    """What every `seed_skill` metric of `plan` starts with (for a SQL `starts_with`)."""
    return f"{plan}.skill.seed"


def plan_metric(plan: str, name: str) -> str:
    """A per-plan summary the retrain probe records (`PLAN_EPOCHS`, `skill_mean`, ...)."""
    return f"{plan}.{name}"


PLAN_EPOCHS = "epochs"  # plan_metric(plan, PLAN_EPOCHS): the most epochs any seed ran
#: plan_metric(plan, ERROR): a change that could not be built or trained (its own `error`
#: row, the reason in its detail; every other change still ran), and details["variants"][plan]
#: ["error"]: the same reason
ERROR = "error"
#: details["variants"][plan] lists, one per seed trained: why training stopped, its last loss
STOPPED = "stopped"
FINAL_LOSS = "final_loss"
SKIPPED_DETAIL = "skipped"  # details["skipped"]: why retraining did not run (a healthy model)


# ---------------------------------------------------------------- per-layer and per-scale keys

#: `<kind>.<layer>`: the activations probe's dead or saturated share of a layer's units and the
#: gradients probe's gradient norm of its kernel
DEAD_FRACTION, SATURATED_FRACTION, GRAD_NORM = "dead_fraction", "saturated_fraction", "grad_norm"
LAYER_KINDS = (DEAD_FRACTION, SATURATED_FRACTION, GRAD_NORM)
LAYERS = "layers"  # details["layers"] of activations and gradients: their layers in model order
_LAYER = re.compile(rf"^(?P<kind>{'|'.join(LAYER_KINDS)})\.(?P<layer>.+)$")


def layer_metric(kind: str, layer: str) -> str:
    """The metric holding `kind` (one of `LAYER_KINDS`) for `layer`."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"layer metric kind {kind!r} is not one of {LAYER_KINDS}")
    return f"{kind}.{layer}"


def parse_layer_metric(metric: str) -> tuple[str, str] | None:
    """(kind, layer) of a `layer_metric`, None for any other metric."""
    match = _LAYER.match(metric)
    return (match["kind"], match["layer"]) if match else None


NOISE_PERTURBATION = "noise_"  # the sensitivity probe's slice `noise_<scale>`
_RESPONSE_NOISE = re.compile(r"^response_noise_(?P<scale>[0-9.eE+-]+)$")


def noise_perturbation(scale: float) -> str:
    """The name of the sensitivity probe's perturbation by noise of `scale` label spreads."""
    return f"{NOISE_PERTURBATION}{scale:g}"


def response(perturbation: str) -> str:
    """The metric holding the output's response to a sensitivity perturbation."""
    return f"response_{perturbation}"


def parse_response_noise(metric: str) -> float | None:
    """The noise scale of a `response(noise_perturbation(scale))` metric, None otherwise."""
    match = _RESPONSE_NOISE.match(metric)
    return float(match["scale"]) if match else None
