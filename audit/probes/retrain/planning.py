"""Planning: the baseline plus every counterfactual the vocabulary declares that applies to
this subject, in the vocabulary's planning order, suspects first, at their length."""

from __future__ import annotations

from dataclasses import replace

from audit import faults
from audit.evidence import keys
from audit.faults.plan import Plan
from audit.faults.unit import PlanContext
from audit.probes.retrain.budget import Length, plan_length
from audit.probes.retrain.settings import RetrainSettings
from audit.probes.retrain.variants import Split
from audit.subject import Subject


def _planned(ctx: PlanContext, after_length: bool) -> list[Plan]:
    """The plans of every counterfactual of the vocabulary (those planned before or after the
    length is known), in planning order; each sees the plans planned before it."""
    out: list[Plan] = []
    for cf in faults.PLANNING:
        if cf.after_length == after_length:
            built = cf.build(ctx, cf)
            ctx.planned += built
            out += built
    wanted = ctx.settings.counterfactuals
    return out if wanted is None else [p for p in out if p.name in wanted]


def plan_changes(subject: Subject, split: Split, settings: RetrainSettings) -> list[Plan]:
    """The baseline plus every counterfactual that applies to this subject, each declaring
    the fault it tests, and the controls that isolate changes that move two things. Lengths
    are not set yet (`with_length` sets them); a change that cannot apply is never planned."""
    baseline = Plan(keys.BASELINE, "the model's own training config")
    ctx = PlanContext(subject, split, settings, planned=[baseline])
    return order_plans([baseline, *_planned(ctx, after_length=False)])


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


def with_length(plans: list[Plan], length: Length, settings: RetrainSettings,
                subject: Subject, split: Split) -> list[Plan]:
    """Every plan at the chosen length, plus the counterfactuals that depend on it (a
    default-length training against a short original)."""
    out = [replace(p, epochs=length.epochs) if p.epochs is None else p for p in plans]
    ctx = PlanContext(subject, split, settings, planned=list(out), length=length)
    return out + _planned(ctx, after_length=True)


def plan_variants(subject: Subject, split: Split, settings: RetrainSettings) -> list[Plan]:
    """Every plan with its length (for a split whose training rows are already final)."""
    changes = plan_changes(subject, split, settings)
    length = length_for(subject, split, len(changes) + 1, settings)
    return with_length(changes, length, settings, subject, split)


