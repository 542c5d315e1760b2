"""Faults of the data: bad rows or labels, unscaled inputs or targets, class imbalance."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from audit.evidence import keys
from audit.evidence.keys import Config, Data, Retrain
from audit.faults.codes import Code
from audit.faults.plan import Plan
from audit.faults.unit import (
    FULL,
    PARTIAL,
    WEAK,
    Counterfactual,
    Evidence,
    Fault,
    PlanContext,
    Support,
)
from audit.models.vocab import BINARY_LOSSES, CATEGORICAL_LOSSES, REGRESSION_LOSSES
from audit.subject.inputs import column_moments, finite_rows, scalable_inputs
from audit.subject.labels import label_checks


def label_problem(ev: Evidence) -> str | None:
    """Why the labels are not what the loss expects (data, not loss, at fault), or None."""
    if ev(Data.LABEL_DISTINCT) == 1:
        return "the label is constant: there is nothing to learn"
    if ev(Config.LOSS_IS_CLASSIFICATION) != 1:
        return None
    scale = ev(Data.LABEL_FRACTION_SCALE)
    if math.isfinite(scale):
        return (f"the labels are fractions with denominator {scale:.0f}: class ids divided by "
                "a scale, under a classification loss (multiply them back)")
    if ev(Data.LABEL_NEAR_INTEGER) > 0:
        return ("the labels are floats near integers, not integers, under a classification "
                "loss (round them)")
    if ev(Data.LABEL_ONE_HOT_BAD_ROWS) > 0:
        return "some one-hot label rows do not sum to 1"
    return None


# ---------------------------------------------------------------- bad_data


@dataclass(frozen=True)
class LabelNoiseLimits:
    #: the share of training rows whose label the reference learner's out-of-fold
    #: probabilities dispute (confident learning): clean zoo sets score at most 0.03 where a
    #: linear learner separates the classes; a class 70% relabelled at random, 0.14. Where
    #: classes overlap, overlap is disputed like noise (0.12 on clean overlapping clusters),
    #: so the share is only a suspicion: the labels are a cause when training without the
    #: disputed rows relabelled restores skill on validation rows scored with their given
    #: labels (`relabel_disputed`)
    hint_share: float = 0.05
    #: below this reference skill the classes overlap, and a share is a weaker hint still
    separable_skill: float = 0.6


def _label_noise(ev: Evidence, lim: LabelNoiseLimits) -> Support | None:
    share, skill = ev(Retrain.LABEL_ISSUE_SHARE), ev(Retrain.LINEAR_REFERENCE)
    if not share >= lim.hint_share:
        return None
    rows = ev.details("retrain").get(keys.LABEL_ISSUE_ROWS, [])
    # a signal, never decisive alone: the counterfactual confirms it or nothing does
    return Support(PARTIAL if skill >= lim.separable_skill else WEAK, dict(
        label_problem="noisy", label_issue_share=share,
        label_issues=ev(Retrain.LABEL_ISSUES), label_rows_checked=ev(Retrain.LABEL_ROWS_CHECKED),
        label_issue_rows=list(rows), reference_skill=skill,
        reference_label_error=ev(Retrain.REFERENCE_ERROR),
        disputed_label_probability=ev(Retrain.DISPUTED_LABEL_PROBABILITY)))


def _bad_data(ev: Evidence, lim: LabelNoiseLimits) -> Support | None:
    labels_wrong = label_problem(ev)
    if labels_wrong:
        return Support(FULL, dict(
            label_problem=labels_wrong, label_distinct_values=ev(Data.LABEL_DISTINCT),
            label_fraction_scale=ev(Data.LABEL_FRACTION_SCALE),
            label_near_integer_fraction=ev(Data.LABEL_NEAR_INTEGER),
            label_one_hot_bad_rows=ev(Data.LABEL_ONE_HOT_BAD_ROWS)))
    bad, malformed = ev(Data.BAD_ROWS), ev(Data.MALFORMED_CELLS)
    if bad > 0 or malformed > 0:
        return Support(FULL, dict(
            bad_rows=bad, bad_row_fraction=ev(Data.BAD_ROW_FRACTION),
            nan_cells=ev(Data.NAN_CELLS), inf_cells=ev(Data.INF_CELLS),
            malformed_cells=malformed))
    noisy = _label_noise(ev, lim)
    if noisy is not None:
        return noisy
    if ev(Data.CONSTANT_COLUMNS) > 0:  # a hint, never a blame on its own
        return Support(WEAK, dict(constant_columns=ev(Data.CONSTANT_COLUMNS)))
    return None


def _constant_label(ev: Evidence) -> str | None:
    """A constant label: nothing to learn, so no change of training can restore skill."""
    return "the label is constant" if ev(Data.LABEL_DISTINCT) == 1 else None


def label_repair(ctx: PlanContext) -> tuple[float, str] | None:
    """The mechanical repair of labels a classification loss cannot read: class ids divided
    by a scale are multiplied back, floats near integers rounded (factor, description)."""
    subject, split = ctx.subject, ctx.split
    if subject.training.loss not in BINARY_LOSSES | CATEGORICAL_LOSSES:
        return None
    checks = label_checks(split.y_train, subject.task)
    scale = checks[Data.LABEL_FRACTION_SCALE.metric]
    if np.isfinite(scale):
        return float(scale), f"labels x {scale:.0f} (class ids again)"
    if checks[Data.LABEL_NEAR_INTEGER.metric] > 0:
        return 1.0, "labels rounded to the nearest integer"
    return None


def _repair_labels(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    repair = label_repair(ctx)
    return [] if repair is None else [cf.plan(change=repair[1], suspect=True,
                                              relabel=repair[0])]


def _drop_bad_rows(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    if finite_rows(ctx.split.x_train, ctx.split.y_train).all():
        return []
    return [cf.plan(suspect=True, drop_bad_rows=True)]


def _relabel_disputed(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    disputed, rows = len(ctx.split.disputed), len(ctx.split.y_train)
    share = ctx.split.disputed_share
    if ctx.subject.task == "regression" or not rows or not disputed or not (
            share >= BAD_DATA.limits.hint_share):
        return []
    return [cf.plan(change=f"{disputed} of {rows} training rows whose label the data "
                           "disputes given the class it gives them", suspect=True,
                    relabel_disputed=True)]


#: training rows whose label the rows around them contradict, given the class confident
#: learning counts them under; validation rows keep their given labels, so a model that merely
#: learned the reference's own labels gains nothing. A class that lost rows to relabelling
#: looks imbalanced: balanced class weights then only compensate for the labels (`outranks`)
RELABEL_DISPUTED = Counterfactual("relabel_disputed",
                                  "training rows with disputed labels relabelled",
                                  Code.BAD_DATA, _relabel_disputed,
                                  outranks=(Code.CLASS_IMBALANCE,))
REPAIR_LABELS = Counterfactual("repair_labels", "labels repaired into class ids",
                               Code.BAD_DATA, _repair_labels)
DROP_BAD_ROWS = Counterfactual("drop_bad_rows", "rows with NaN/inf dropped", Code.BAD_DATA,
                               _drop_bad_rows)

BAD_DATA = Fault(
    Code.BAD_DATA,
    "The data has NaN/inf cells, constant or malformed columns, labels that are not "
    "what the loss expects (class ids divided by a scale, floats near integers, one-hot "
    "rows not summing to 1, a constant label), or labels the rows themselves dispute "
    "(mislabelled rows, `label_problem: noisy`, a cause only when training without them "
    "restores the model).",
    "Drop or impute the NaN/inf rows, remove constant columns, fix malformed values "
    "upstream; give a classification loss integer class ids (multiply back, round); "
    "review the disputed rows (`label_issue_rows`) and relabel or drop them.",
    probe="data", rule=_bad_data, limits=LabelNoiseLimits(),
    counterfactuals=(REPAIR_LABELS, DROP_BAD_ROWS, RELABEL_DISPUTED), definitive=True,
    settles=_constant_label)


#: the labels' encoding disagrees with the model's outputs: settled before the probes run
#: (audit/diagnose/class_order.py), which audit the case under the order that fits
LABEL_ORDER = Fault(
    Code.LABEL_ORDER,
    "The labels are encoded in another class order than the model's outputs.",
    "Set `classes:` in the manifest to the model's class order, or re-encode the labels.",
    probe="class_order", judged_by="class_order")


# ---------------------------------------------------------------- unscaled inputs


@dataclass(frozen=True)
class InputLimits:
    scale_log10: float = 1.0  # inputs' RMS magnitude of 10 or more is unscaled
    std_ratio: float = 100.0  # feature stds this far apart are unscaled


def _unscaled_inputs(ev: Evidence, lim: InputLimits) -> Support | None:
    scale, ratio = ev(Data.FEATURE_SCALE_LOG10), ev(Data.FEATURE_STD_RATIO)
    if scale >= lim.scale_log10 or ratio >= lim.std_ratio:
        return Support(FULL, dict(feature_scale_log10=scale, feature_std_ratio=ratio,
                                  feature_abs_max=ev(Data.FEATURE_ABS_MAX),
                                  features=ev(Data.FEATURES)))
    if scale >= lim.scale_log10 / 2 or ratio >= math.sqrt(lim.std_ratio):
        return Support(PARTIAL, dict(feature_scale_log10=scale, feature_std_ratio=ratio,
                                     features=ev(Data.FEATURES)))
    return None


def _standardize_inputs(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    scalable = scalable_inputs(ctx.split.x_train)
    if not scalable:
        return []
    with np.errstate(all="ignore"):
        stats = [column_moments(a) for a in scalable]
    mean = np.concatenate([m for m, _ in stats])
    std = np.concatenate([s for _, s in stats])
    if not (np.nanmax(np.abs(mean)) > 0.5 or np.nanmax(std) > 2 or np.nanmin(std) < 0.5):
        return []
    names = ", ".join(a.name for a in scalable) if len(scalable) > 1 else "inputs"
    return [cf.plan(change=f"{names} standardized per feature", suspect=True,
                    standardize_inputs=True)]


STANDARDIZE_INPUTS = Counterfactual("standardize_inputs", "inputs standardized per feature",
                                    Code.UNSCALED_INPUTS, _standardize_inputs)

UNSCALED_INPUTS = Fault(
    Code.UNSCALED_INPUTS,
    "Input features are on scales that keep the network from learning.",
    "Standardize the inputs (subtract the mean, divide by the std per feature) "
    "and ship the same scaler with the model.",
    probe="data", rule=_unscaled_inputs, limits=InputLimits(),
    counterfactuals=(STANDARDIZE_INPUTS,))


# ---------------------------------------------------------------- unscaled targets


@dataclass(frozen=True)
class TargetLimits:
    scale: float = 10.0  # |mean| or std of regression targets of 10 or more


def _unscaled_targets(ev: Evidence, lim: TargetLimits) -> Support | None:
    if max(abs(ev(Data.LABEL_MEAN)), ev(Data.LABEL_STD)) >= lim.scale:
        return Support(FULL, dict(label_mean=ev(Data.LABEL_MEAN), label_std=ev(Data.LABEL_STD)))
    return None


def _standardize_targets(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    # a class loss reads ids: only regression targets under a regression loss are scaled
    if ctx.subject.task != "regression" or ctx.subject.training.loss not in REGRESSION_LOSSES:
        return []
    y = ctx.split.y_train[np.isfinite(ctx.split.y_train)]
    if y.size and (abs(float(y.mean())) > 1 or not 0.5 <= float(y.std()) <= 2):
        return [cf.plan(suspect=True, standardize_targets=True)]
    return []


STANDARDIZE_TARGETS = Counterfactual("standardize_targets", "targets standardized",
                                     Code.UNSCALED_TARGETS, _standardize_targets,
                                     works_around=(Code.UNDERTRAINED,))

UNSCALED_TARGETS = Fault(
    Code.UNSCALED_TARGETS,
    "Regression targets are on a scale the output layer cannot reach in training.",
    "Standardize the targets for training and invert the scaling at prediction time.",
    probe="data", rule=_unscaled_targets, limits=TargetLimits(),
    counterfactuals=(STANDARDIZE_TARGETS,))


# ---------------------------------------------------------------- class imbalance


@dataclass(frozen=True)
class ImbalanceLimits:
    ratio: float = 0.1  # minority/majority class count (Deepchecks)
    near_factor: float = 3.0  # within this factor of the bar: a partial signal


def _class_imbalance(ev: Evidence, lim: ImbalanceLimits) -> Support | None:
    imbalance = ev(Data.IMBALANCE_RATIO)
    if imbalance <= lim.ratio:
        return Support(FULL, dict(imbalance_ratio=imbalance,
                                  minority_fraction=ev(Data.MINORITY_FRACTION)))
    if imbalance <= lim.near_factor * lim.ratio:
        return Support(PARTIAL, dict(imbalance_ratio=imbalance))
    return None


def _class_weights(ctx: PlanContext, cf: Counterfactual) -> list[Plan]:
    if ctx.subject.task == "regression":
        return []
    counts = np.bincount(ctx.split.y_train.astype(np.int64), minlength=ctx.subject.n_classes)
    present = counts[counts > 0]
    if len(present) >= 2 and present.min() / present.max() <= 0.5:
        return [cf.plan(suspect=True, class_weights=True)]
    return []


CLASS_WEIGHTS = Counterfactual("class_weights", "balanced class weights", Code.CLASS_IMBALANCE,
                               _class_weights)

CLASS_IMBALANCE = Fault(
    Code.CLASS_IMBALANCE,
    "One class dominates the labels and the model predicts only the majority.",
    "Train with balanced class weights or resample the classes.",
    probe="data", rule=_class_imbalance, limits=ImbalanceLimits(),
    counterfactuals=(CLASS_WEIGHTS,))
