"""Racing counterfactuals on a real zoo case: plans start with one seed, hopeless ones drop out,
the rest get seeds one at a time until the confirmation rule is met or out of reach, and the
diagnosis is the one the full plan x seed grid gives."""

from __future__ import annotations

import pytest

from audit.diagnose import THRESHOLDS, diagnose
from audit.evidence import keys
from audit.manifest.case import CaseSpec
from audit.probes.retrain import RetrainSettings, run
from audit.subject import Subject, load_subject
from audit.zoo import SCENARIOS, build_scenario


@pytest.fixture(scope="module")
def lr_too_low(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    case = build_scenario(SCENARIOS["linear_lr_too_low"], tmp_path_factory.mktemp("race"))
    return load_subject(CaseSpec(**case.spec_fields()))


def seeds_of(metrics: dict[str, float], plan: str) -> list[int]:
    return sorted(seed for key in metrics if (parsed := keys.parse_seed_skill(key))
                  for name, seed in [parsed] if name == plan)


def test_racing_spends_fewer_trainings_and_reaches_the_same_diagnosis(
        lr_too_low: Subject) -> None:
    raced = run(lr_too_low, RetrainSettings(race_stacked_min_params=0))
    full = run(lr_too_low, RetrainSettings(race=False))
    assert raced.metrics["race.on"] == 1 and full.metrics["race.on"] == 0
    grid = full.metrics[keys.Retrain.FULL_GRID_TRAININGS.metric]
    assert full.metrics[keys.Retrain.TRAININGS.metric] == grid
    assert raced.metrics[keys.Retrain.TRAININGS.metric] < grid
    assert raced.metrics["epochs_trained"] < full.metrics["epochs_trained"]
    task = lr_too_low.task
    verdicts = [diagnose({"retrain": r}, task) for r in (raced, full)]
    assert verdicts[0].primary_fault == verdicts[1].primary_fault == "lr_too_low"


def test_each_plan_gets_seeds_only_while_its_confirmation_is_undecided(
        lr_too_low: Subject) -> None:
    settings = RetrainSettings(race_stacked_min_params=0)
    result = run(lr_too_low, settings)
    metrics, variants = result.metrics, result.details[keys.VARIANTS]
    all_seeds = [settings.seed * 1000 + s for s in range(settings.seeds)]
    base = {seed: metrics[keys.seed_skill(keys.BASELINE, seed)]
            for seed in seeds_of(metrics, keys.BASELINE)}
    longest = 0
    for plan in variants:
        if plan == keys.BASELINE:
            continue
        seeds = seeds_of(metrics, plan)
        assert seeds == all_seeds[:len(seeds)]  # seeds are added in order, none skipped
        longest = max(longest, len(seeds))
        wins = [metrics[keys.seed_skill(plan, s)] - base[s] > THRESHOLDS.win_margin
                for s in seeds]
        if "dropped" in variants[plan]:
            assert len(seeds) == 1
            continue
        # stopped as soon as 2 of 3 seeds won, or 2 lost; a third seed only after a split
        if len(seeds) == 2:
            assert wins[0] == wins[1]
        if len(seeds) == 3:
            assert wins[0] != wins[1]
    assert sorted(base) == all_seeds[:longest]  # the baseline trained each seed a plan needed
    assert metrics["race.dropped_plans"] == sum("dropped" in v for v in variants.values())


def test_the_race_mirrors_the_diagnosis_confirmation_rule() -> None:
    from audit.faults import CONFIRMATION

    assert "win_margin" not in RetrainSettings.model_fields  # one set of numbers, not a copy
    assert CONFIRMATION.win_margin == THRESHOLDS.win_margin
    assert CONFIRMATION.win_share == THRESHOLDS.min_win_share
