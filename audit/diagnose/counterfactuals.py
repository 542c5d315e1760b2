"""What each counterfactual did against the baseline, seed by seed (`Outcome`), and what the
cheap probes say for each cause (`static_support`, by its unit's rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit import faults
from audit.diagnose.thresholds import THRESHOLDS, Thresholds
from audit.evidence import keys
from audit.evidence.keys import Retrain
from audit.evidence.results import ProbeResult
from audit.faults import Evidence, Plan


@dataclass
class Outcome:
    """What one counterfactual did, compared seed by seed with the baseline."""

    name: str
    plan: Plan
    skills: list[float]
    baseline: list[float]
    effect: float
    win_share: float
    effect_size: float
    mean_skill: float
    restored: bool
    confirmed: bool
    attainable: float = float("nan")  # what the data allows, by a reference learner

    @property
    def change(self) -> str:
        return self.plan.change

    def evidence(self, original: float) -> dict[str, Any]:
        rate = {} if self.plan.learning_rate is None else {
            "learning_rate_tried": self.plan.learning_rate}
        if math.isfinite(self.attainable) and self.attainable > 0:
            rate.update(attainable_skill=round(self.attainable, 4),
                        share_of_attainable=round(self.mean_skill / self.attainable, 2))
        return {"counterfactual": self.name, "change": self.change, **rate,
                "skill_with_change": _round(self.skills), "skill_own_config": _round(self.baseline),
                "skill_shipped_model": round(original, 4), "effect": round(self.effect, 4),
                "effect_size_d": round(self.effect_size, 2), "seeds_won": self.win_share}


def _round(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def clip_skill(value: float) -> float:
    """Skill for comparisons: NaN (diverged) counts as the trivial predictor, floor at -1."""
    return 0.0 if not math.isfinite(value) else max(-1.0, min(1.0, value))


# ---------------------------------------------------------------- counterfactual outcomes


def bars(attainable: float, th: Thresholds = THRESHOLDS) -> tuple[float, float]:
    """The skill that counts as restored and the gain that counts as an effect: the fixed
    bars, or a share of the attainable skill (a reference learner's, independent of the
    counterfactuals) where the data allows less than they ask."""
    if not math.isfinite(attainable):
        return th.restored_skill, th.min_effect
    share = th.attainable_share * attainable
    return (max(min(th.restored_skill, share), th.min_restored_skill),
            max(min(th.min_effect, share), th.min_effect_floor))


def counterfactual_outcomes(retrain: ProbeResult, original: float,
                            th: Thresholds = THRESHOLDS) -> list[Outcome]:
    """Each counterfactual's outcome against the baseline, seed by seed."""
    per_seed: dict[str, dict[int, float]] = {}
    for key, value in retrain.metrics.items():
        parsed = keys.parse_seed_skill(key)
        if parsed:
            per_seed.setdefault(parsed[0], {})[parsed[1]] = clip_skill(value)
    base_by_seed = per_seed.get(keys.BASELINE)
    if not base_by_seed:
        return []
    best = max(float(np.mean(list(v.values()))) for v in per_seed.values())
    attainable = retrain.get(Retrain.ATTAINABLE.metric)
    restored_bar, effect_bar = bars(attainable, th)
    outcomes = []
    for name, by_seed in per_seed.items():
        if name == keys.BASELINE:
            continue
        common = [seed for seed in by_seed if seed in base_by_seed]  # a raced-out plan: one
        skills = [by_seed[seed] for seed in common]
        base = [base_by_seed[seed] for seed in common]
        if not common:
            continue
        diffs = np.array(skills) - np.array(base)
        effect = float(diffs.mean())
        spread = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        d = effect / max(spread, th.min_diff_spread)
        wins = float(np.mean(diffs > th.win_margin))
        mean_skill = float(np.mean(skills))
        restored = mean_skill >= max(restored_bar, th.restored_share * best)
        confirmed = (restored and effect >= effect_bar and wins >= th.min_win_share
                     and mean_skill - clip_skill(original) >= th.min_gain_over_original)
        outcomes.append(Outcome(name, Plan.read(name, retrain.details), skills, base, effect,
                                wins, d, mean_skill, restored, confirmed, attainable))
    return outcomes


# ---------------------------------------------------------------- static support


def static_support(results: dict[str, ProbeResult]) -> dict[str, tuple[float, dict[str, Any]]]:
    """For each cause: how strongly the cheap probes point at it (0..1), and the numbers, by
    its unit's rule."""
    evidence = Evidence(results)
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for fault in faults.CAUSES:
        found = fault.support(evidence)
        if found is not None:
            out[fault.code] = (min(found.strength, 1.0),
                               {k: jsonable(v) for k, v in found.evidence.items()})
    return out


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return round(value, 6)
    return value
