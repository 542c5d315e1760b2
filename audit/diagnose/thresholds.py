"""Every number the judgement uses, named and documented in one place."""

from __future__ import annotations

from dataclasses import dataclass

from audit.faults import CONFIRMATION, HEALTH, PARTIAL


@dataclass(frozen=True)
class Thresholds:
    """Every number the diagnosis uses, in one place."""

    flat_spread: float = 0.1  # output spread / label spread below this: the output is flat
    poor_skill: float = HEALTH.skill  # skill over the trivial predictor below this: underperforming
    headroom: float = HEALTH.headroom  # a reference learner this much better: underperforming
    clear_skill: float = 0.1  # a healthy model's skill is at least this (Deepchecks' gain bar)
    restored_skill: float = 0.3  # a counterfactual must reach at least this skill...
    restored_share: float = 0.6  # ...and this share of the best variant's skill
    min_effect: float = 0.2  # mean skill gain over the baseline (skills clipped to [-1, 1])
    #: where the data allows little (the attainable skill, by a reference learner trained on
    #: the same rows), this share of it counts as restored and as a full effect...
    attainable_share: float = 0.7
    min_restored_skill: float = 0.15  # ...but never less than this skill...
    min_effect_floor: float = 0.1  # ...or this gain over the baseline
    min_win_share: float = CONFIRMATION.win_share  # share of seeds won by `win_margin`
    win_margin: float = CONFIRMATION.win_margin
    min_gain_over_original: float = 0.15  # the change must also beat the shipped model
    static_alone: float = 0.75  # static support that may blame a fault with no counterfactual
    partial_support: float = PARTIAL  # static support that names an also-fixed fault
    min_diff_spread: float = 0.05  # floor of the seed-to-seed spread in the effect size
    static_weight: float = 0.2  # how much static support adds to a counterfactual's effect
    priority_weight: float = 0.1  # root-cause order breaks near-ties
    # confidence: calibrated on the zoo (benchmarks/README.md, tests/test_zoo_diagnosis.py)
    confidence_confirmed: float = 0.5  # a confirmed fault starts here...
    confidence_per_effect: float = 0.45  # ...plus this times seeds won times effect / full
    full_effect: float = 0.5  # an effect this large counts fully toward confidence
    confidence_static: float = 0.25  # an unconfirmed fault starts here...
    confidence_per_support: float = 0.3  # ...plus this times its static support
    confidence_info: float = 0.2  # times support: something seen but not blamed
    confidence_contributing: float = 0.6  # the partner of a confirmed pair
    confidence_secondary: float = 0.3  # another fault whose change also worked: at most this
    confidence_flat: float = 0.9  # the output is flat: measured directly
    confidence_no_skill: float = 0.8  # no skill: measured directly
    confidence_short: float = 0.6  # below the reference: measured, against a simple learner


THRESHOLDS = Thresholds()
