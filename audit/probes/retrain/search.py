"""The two searches beyond single changes: the learning-rate walk (an LR range test over the
rungs already tried) and the greedy two-change search."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from audit.evidence import keys
from audit.faults.plan import CHANGE_FIELDS, Plan
from audit.faults.training import rate_rung
from audit.faults.unit import CONFIRMATION
from audit.probes.retrain.settings import RetrainSettings


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
    works, margin = settings.pairs_below_skill, CONFIRMATION.win_margin
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
            walked.append(replace(rate_rung(own_lr, rate), epochs=far.epochs,
                                  works_around=far.works_around))
        elif len(side) >= 2:
            before = side[-2]
            gap = abs(math.log10(far.learning_rate / before.learning_rate))
            if (value(far.name) >= max(works, best_change - margin)
                    and value(before.name) < works and gap > 0.75):
                middle = math.sqrt(far.learning_rate * before.learning_rate)
                walked.append(replace(rate_rung(own_lr, middle), epochs=far.epochs,
                                      works_around=far.works_around))
    return walked



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


