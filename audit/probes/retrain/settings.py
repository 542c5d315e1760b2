"""The retrain probe's settings: its budget, racing and search rules."""

from __future__ import annotations

from audit.faults.unit import HEALTH
from audit.probes.retrain.budget import LengthSettings


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
    #: the original does well on validation with this skill, within `healthy_headroom` of the
    #: reference learner's (`audit.faults.HEALTH`)
    healthy_skill: float = HEALTH.skill
    healthy_headroom: float = HEALTH.headroom
    counterfactuals: tuple[str, ...] | None = None  # restrict to these names (None: all)
    #: racing: every plan trains one seed first; the plans still in contention get further
    #: seeds one at a time, until the confirmation rule is met or can no longer be met
    race: bool = True
    #: plain Dense stacks train every seed stacked in one graph, where a member costs little
    #: next to the step's overhead; they race only from this many parameters, where it does not
    race_stacked_min_params: int = 50_000
    race_drop_skill: float = 0.15  # a first seed below this skill, not beating the baseline's
    race_drop_margin: float = 0.05  # first seed by this margin, drops its plan
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

