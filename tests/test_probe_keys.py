"""The typed contract between probes and `diagnose`: every key `diagnose` reads is written by
its probe under that name, so a renamed metric fails here instead of silencing a rule."""

from __future__ import annotations

import math

import pytest

from audit import probes
from audit.engine import probe_settings
from audit.probes import keys
from audit.probes.keys import Key
from audit.spec import Budget, CaseSpec
from audit.subject import load_subject

#: keys written only for one kind of task (or only when the probe skips its work)
REGRESSION_ONLY = {keys.Data.LABEL_MEAN, keys.Data.LABEL_STD}
CLASSIFICATION_ONLY = {keys.Data.IMBALANCE_RATIO, keys.Data.MINORITY_FRACTION,
                       keys.Sensitivity.DISTINCT_CLASSES, keys.Retrain.LABEL_ISSUE_SHARE,
                       keys.Retrain.LABEL_ISSUES, keys.Retrain.LABEL_ROWS_CHECKED}
WHEN_SKIPPED = {keys.Retrain.SKIPPED}


def declared() -> list[Key]:
    return [k for ns in keys.NAMESPACES.values() for k in vars(ns).values()
            if isinstance(k, Key)]


def test_every_registered_probe_has_its_key_namespace() -> None:
    from audit.spec import ALL_PROBES

    assert list(keys.NAMESPACES) == list(probes.PROBES) == list(ALL_PROBES)
    for name, namespace in keys.NAMESPACES.items():
        assert {k.probe for k in vars(namespace).values() if isinstance(k, Key)} == {name}


@pytest.fixture(scope="module")
def measured(zoo_cases: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Every probe's metrics on a regression and a classification zoo subject (retrain with a
    tiny budget, restricted to one change, so the pair search runs too)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task, name in (("regression", "regression_optimizer_stalled"),
                       ("classification", "multiclass_undertrained")):
        spec = CaseSpec(**zoo_cases[name].spec_fields(), budget=Budget(flops=1.0, seeds=1),
                        seed=1)
        subject = load_subject(spec)
        out[task] = {}
        for probe_name, probe in probes.PROBES.items():
            settings = probe_settings(probe_name, spec)
            if probe_name == "retrain":
                settings = settings.model_copy(update={"counterfactuals": ("adam",),
                                                       "min_budget_steps": 10})
            result = probes.run_probe(probe, subject, settings)
            assert result.status == "ok", (probe_name, result.error)
            out[task][probe_name] = result.metrics
    return out


def test_every_key_diagnose_reads_is_written_by_its_probe(measured: dict) -> None:
    for key in declared():
        if key in WHEN_SKIPPED:
            continue
        tasks = (["regression"] if key in REGRESSION_ONLY else
                 ["classification"] if key in CLASSIFICATION_ONLY else
                 ["regression", "classification"])
        for task in tasks:
            assert key.metric in measured[task][key.probe], (task, key)
    assert {k.probe for k in declared()} <= set(probes.PROBES)


def test_per_seed_skills_round_trip_and_pairs_are_counted(measured: dict) -> None:
    retrain = measured["regression"]["retrain"]
    seeds = [keys.parse_seed_skill(k) for k in retrain]
    assert (keys.BASELINE, 1000) in seeds and ("adam", 1000) in seeds
    assert keys.parse_seed_skill(keys.seed_skill("lr_down_x0.01+adam", -3)) == (
        "lr_down_x0.01+adam", -3)
    assert keys.parse_seed_skill("baseline.skill_mean") is None
    # one change tried: nothing to pair, and the count says so
    assert retrain[keys.Retrain.PAIRS_TRIED.metric] == 0.0
    assert retrain[keys.Retrain.TRAININGS.metric] == 2.0


def test_a_key_reads_nan_when_its_probe_did_not_run() -> None:
    assert math.isnan(keys.Data.BAD_ROWS.read({}))
