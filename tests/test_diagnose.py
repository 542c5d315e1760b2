"""The judgement rules, on hand-made probe results (no TensorFlow needed)."""

from __future__ import annotations

from typing import Any

import pytest

from audit import faults
from audit.diagnose import THRESHOLDS, diagnose
from audit.evidence import keys
from audit.evidence.results import ProbeResult


def sensitivity(skill: float, spread: float) -> ProbeResult:
    return ProbeResult("sensitivity", metrics={"skill": skill, "spread_ratio": spread,
                                               "nan_output_fraction": 0.0})


#: what each hand-made plan declares, as `audit.probes.retrain.plan_variants` would
DECLARED = {
    "standardize_inputs": {"tests": "unscaled_inputs"},
    "lr_up_x10": {"tests": "lr_too_low", "also_fixes": ["undertrained"], "rate_rung": "up"},
    "lr_down_x0.0033": {"tests": "lr_too_high", "also_fixes": ["exploding_gradient", "dead_relu"],
                        "rate_rung": "down"},
    "drop_bad_rows": {"tests": "bad_data"},
    "clip_gradients": {"tests": "exploding_gradient", "also_fixes": ["lr_too_high"]},
    "train_longer": {"tests": "undertrained"},
    "default_init": {"also_fixes": ["dead_relu", "exploding_gradient", "saturated_activations",
                                    "vanishing_gradient"]},
    "nonsaturating": {"tests": "saturated_activations",
                      "also_fixes": ["dead_relu", "vanishing_gradient"]},
    "adam": {"tests": "optimizer_stalled", "control": "baseline",
             "also_fixes": ["vanishing_gradient", "saturated_activations"]},
    "restore_activation": faults.network.RESTORE_ACTIVATION.plan().info(),
}


def retrain(**variants: list[float]) -> ProbeResult:
    metrics, details = {}, {keys.VARIANTS: {}}
    for name, skills in variants.items():
        for i, s in enumerate(skills):
            metrics[keys.seed_skill(name, i)] = s
        parts = name.split(keys.PAIR_JOIN) if keys.PAIR_JOIN in name else []
        details[keys.VARIANTS][name] = {keys.CHANGE: f"change {name}", keys.PARTS: parts,
                                        **DECLARED.get(name, {})}
    return ProbeResult("retrain", metrics=metrics, details=details)


def data(**metrics: float) -> ProbeResult:
    base = {"bad_rows": 0.0, "feature_scale_log10": 0.0, "feature_std_ratio": 1.0}
    return ProbeResult("data", metrics={**base, **metrics})


def test_a_skilled_model_is_healthy_whatever_static_signals_say() -> None:
    results = {"data": data(feature_scale_log10=2.0, bad_rows=3.0),
               "sensitivity": sensitivity(0.95, 1.0),
               "activations": ProbeResult("activations", metrics={"dead_fraction_max": 0.9})}
    d = diagnose(results, "regression")
    assert d.verdict == "healthy" and d.primary_fault is None
    assert {f.fault for f in d.findings} >= {"unscaled_inputs", "dead_relu"}
    assert all(f.severity == "info" for f in d.findings)


def test_a_counterfactual_that_wins_in_every_seed_is_confirmed() -> None:
    results = {"data": data(), "sensitivity": sensitivity(0.0, 0.01),
               "retrain": retrain(baseline=[0.0, 0.01, 0.0], standardize_inputs=[0.9, 0.88, 0.91])}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("flat", "unscaled_inputs")
    top = d.findings[0]
    assert top.confirmed and top.severity == "critical"
    assert top.evidence["seeds_won"] == 1.0 and top.evidence["effect"] > 0.8
    assert "R² 0.90 against 0.00" in top.recommendation


def test_a_win_in_one_seed_of_three_is_not_a_confirmation() -> None:
    results = {"data": data(), "sensitivity": sensitivity(0.1, 0.05),
               "retrain": retrain(baseline=[0.0, 0.0, 0.0], lr_up_x10=[0.9, 0.0, 0.02])}
    d = diagnose(results, "binary")
    assert d.primary_fault == "flat_output"
    assert not any(f.confirmed for f in d.findings)
    assert d.findings[0].evidence["ruled_out"] == ["lr_up_x10"]


def test_a_change_that_does_not_beat_the_shipped_model_confirms_nothing() -> None:
    """The retrain budget is short: beating our own short baseline is not enough."""
    results = {"data": data(), "sensitivity": sensitivity(0.45, 0.8),
               "retrain": retrain(baseline=[0.1, 0.1, 0.1], train_longer=[0.5, 0.5, 0.5])}
    d = diagnose(results, "regression")
    assert d.verdict == "healthy" and d.primary_fault is None


def test_nan_data_is_the_root_cause_not_the_blown_up_weights() -> None:
    results = {"data": data(bad_rows=40.0, bad_row_fraction=0.05),
               "sensitivity": ProbeResult("sensitivity", metrics={"skill": float("nan"),
                                                                  "nan_output_fraction": 1.0}),
               "gradients": ProbeResult("gradients", metrics={"nonfinite_weights": 50.0,
                                                              "depth": 4.0}),
               "retrain": retrain(baseline=[0.0, 0.0, 0.0], drop_bad_rows=[0.8, 0.8, 0.8],
                                  clip_gradients=[0.85, 0.85, 0.85])}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("flat", "bad_data")


def test_near_ties_go_to_the_fault_with_static_support() -> None:
    results = {"data": data(), "sensitivity": sensitivity(0.0, 0.0),
               "activations": ProbeResult("activations", metrics={"dead_fraction_max": 1.0}),
               "retrain": retrain(baseline=[0.0, 0.0, 0.0], default_init=[0.9, 0.9, 0.9],
                                  nonsaturating=[0.92, 0.9, 0.9])}
    assert diagnose(results, "regression").primary_fault == "dead_relu"
    assert faults.get("dead_relu").limits.dead_relu == 0.7


def test_static_signals_ruled_out_by_retraining_blame_nothing() -> None:
    """Noisy data caps skill; raw inputs look unscaled, yet standardizing them changes nothing."""
    results = {"data": data(feature_scale_log10=1.7), "sensitivity": sensitivity(0.35, 0.6),
               "retrain": retrain(baseline=[0.34, 0.36, 0.35],
                                  standardize_inputs=[0.35, 0.36, 0.34])}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("healthy", None)
    assert [f.severity for f in d.findings if f.fault == "unscaled_inputs"] == ["info"]


def test_without_retraining_a_strong_static_signal_is_an_unconfirmed_warning() -> None:
    results = {"data": data(), "sensitivity": sensitivity(0.2, 0.5),
               "activations": ProbeResult("activations", metrics={"dead_fraction_max": 0.95})}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("impaired", "dead_relu")
    assert not d.findings[0].confirmed and d.findings[0].confidence < 0.6


def test_no_skill_is_never_healthy_even_when_no_probe_names_a_cause() -> None:
    """A SavedModel with negative skill whose output moves (it cannot be retrained): impaired,
    with a finding that says what could not be tried."""
    results = {"data": data(), "sensitivity": sensitivity(-0.4, 0.25),
               "retrain": ProbeResult("retrain", status="not_applicable",
                                      error="retraining needs a .keras or .h5 model")}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("impaired", "no_skill")
    top = d.findings[0]
    assert top.fault == "no_skill" and top.severity == "critical" and not top.confirmed
    assert "retraining could not run: retraining needs a .keras" in top.evidence["not_tried"]
    skilled = {"data": data(), "sensitivity": sensitivity(0.3, 0.6)}
    assert diagnose(skilled, "regression").verdict == "healthy"  # clearly above trivial


# ---------------------------------------------------------------- controls, pairs, labels


def config(**metrics: float) -> ProbeResult:
    base = {"loss_fits_labels": 1.0, "loss_is_classification": 0.0, "optimizer_is_sgd": 1.0,
            "lr_log10_vs_typical": 0.0, "learning_rate": 0.01}
    return ProbeResult("config", metrics={**base, **metrics}, details={"loss": "mse"})


def with_declared(result: ProbeResult, name: str, **declared: object) -> ProbeResult:
    result.details[keys.VARIANTS][name].update(declared)
    return result


def test_adam_is_blamed_only_when_the_own_optimizer_at_its_typical_rate_fails() -> None:
    """SGD at 250x its typical rate: Adam (which also moves the rate) and SGD at the typical
    rate both restore the model, so the rate is the cause, and its finding names Adam."""
    runs = retrain(baseline=[0.0, 0.0, 0.0], adam=[0.95, 0.95, 0.94],
                   **{"lr_down_x0.004": [0.8, 0.82, 0.81]})
    with_declared(runs, "adam", control="lr_down_x0.004")
    with_declared(runs, "lr_down_x0.004", tests="lr_too_high", rate_rung="down")
    results = {"data": data(), "config": config(lr_log10_vs_typical=2.4),
               "sensitivity": sensitivity(0.0, 0.01), "retrain": runs}
    d = diagnose(results, "regression")
    assert d.primary_fault == "lr_too_high"
    assert "optimizer_stalled" not in {f.fault for f in d.findings if f.severity != "info"}
    # the finding is the rate's own counterfactual, naming the change its control explains
    evidence = d.findings[0].evidence
    assert evidence["counterfactual"] == "lr_down_x0.004"
    assert evidence["also_restored_by"]["adam"]["skill"] > 0.9
    # the same, but the own optimizer at its typical rate still fails: the optimizer stalls
    runs = retrain(baseline=[0.0, 0.0, 0.0], adam=[0.95, 0.95, 0.94],
                   **{"lr_down_x0.004": [0.02, 0.0, 0.01]})
    with_declared(runs, "adam", control="lr_down_x0.004")
    with_declared(runs, "lr_down_x0.004", tests="lr_too_high", rate_rung="down")
    d = diagnose({**results, "retrain": runs}, "regression")
    assert d.primary_fault == "optimizer_stalled"
    assert d.findings[0].evidence["controls"]["lr_down_x0.004"]["restored"] is False


def test_a_pair_names_the_part_that_does_more_alone_and_its_partner() -> None:
    """Plain SGD trained two epochs: neither Adam nor more epochs alone restore the model,
    both together do. Adam alone got further, so the optimizer is the primary fault and the
    epochs a confirmed contributing finding that names it."""
    results = {"data": data(), "config": config(train_epochs=2.0),
               "sensitivity": sensitivity(0.0, 0.02),
               "retrain": retrain(baseline=[0.0, 0.0, 0.0], adam=[0.2, 0.18, 0.22],
                                  train_longer=[0.05, 0.02, 0.04],
                                  **{"adam+train_longer": [0.9, 0.92, 0.91]})}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("flat", "optimizer_stalled")
    top, partner = d.findings[0], next(f for f in d.findings if f.fault == "undertrained")
    assert top.confirmed and top.severity == "critical" and top.evidence["with"] == "undertrained"
    assert top.evidence["pair"] == "adam+train_longer"
    assert top.evidence["skill_alone"] == {"adam": 0.2, "train_longer": 0.0367}
    assert partner.confirmed and partner.severity == "warning"
    assert partner.evidence["with"] == "optimizer_stalled"
    assert partner.confidence < top.confidence


def test_a_pair_whose_parts_do_equally_little_alone_goes_to_the_root_cause() -> None:
    results = {"data": data(feature_scale_log10=2.5), "config": config(lr_log10_vs_typical=2.0),
               "sensitivity": sensitivity(0.0, 0.0),
               "retrain": retrain(baseline=[0.0, 0.0, 0.0], standardize_inputs=[0.0, 0.0, 0.0],
                                  **{"lr_down_x0.01": [0.0, 0.01, 0.0],
                                     "lr_down_x0.01+standardize_inputs": [0.85, 0.8, 0.83]})}
    with_declared(results["retrain"], "lr_down_x0.01", tests="lr_too_high", rate_rung="down")
    d = diagnose(results, "regression")
    assert d.primary_fault == "unscaled_inputs"  # before lr_too_high in root-cause order
    assert d.findings[0].evidence["with"] == "lr_too_high"


def test_a_pair_is_not_searched_for_when_a_single_change_is_confirmed() -> None:
    results = {"data": data(), "config": config(), "sensitivity": sensitivity(0.0, 0.02),
               "retrain": retrain(baseline=[0.0, 0.0, 0.0], train_longer=[0.8, 0.8, 0.8],
                                  **{"adam+train_longer": [0.95, 0.95, 0.95]})}
    d = diagnose(results, "regression")
    assert d.primary_fault == "undertrained"
    assert all("with" not in f.evidence for f in d.findings)


def test_labels_that_are_fractions_under_a_classification_loss_are_bad_data() -> None:
    """Class ids divided by 4: the loss looks mismatched, but the labels are what is wrong."""
    results = {"data": data(label_distinct=4.0, label_fraction_scale=4.0),
               "config": config(loss_fits_labels=0.0, loss_is_classification=1.0),
               "sensitivity": sensitivity(-0.5, 0.02)}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("flat", "bad_data")
    assert "denominator 4" in d.findings[0].evidence["label_problem"]
    assert "loss_mismatch" not in {f.fault for f in d.findings}


def test_a_constant_label_is_bad_data_whatever_the_loss() -> None:
    results = {"data": data(label_distinct=1.0), "config": config(),
               "sensitivity": sensitivity(0.0, 0.3)}
    d = diagnose(results, "regression")
    assert (d.verdict, d.primary_fault) == ("impaired", "bad_data")
    assert d.findings[0].evidence["label_problem"].startswith("the label is constant")


def test_every_threshold_and_rule_is_named() -> None:
    """The causes read as one table in root-cause order, each with its thresholds."""
    assert faults.root_cause_rank("bad_data") == 1.0
    assert faults.root_cause_rank("undertrained") == 0.0
    assert faults.get("vanishing_gradient").limits.deep_net == 3
    assert faults.get("undertrained").limits.few_epochs == 5


def diagnosed_at_length(result: ProbeResult, cut: bool, reproduces: bool) -> Any:
    """`result`'s diagnosis when its counterfactuals trained 120 of the original's 15,625
    steps (`cut`) or all of them, and its baseline did (not) reproduce the symptom."""
    result.metrics.update({keys.Retrain.CUT_BY_BUDGET.metric: float(cut),
                           keys.Retrain.LENGTH_STEPS.metric: 120.0 if cut else 15_625.0,
                           keys.Retrain.WANTED_STEPS.metric: 15_625.0,
                           keys.Retrain.BASELINE_REPRODUCES.metric: float(reproduces)})
    return diagnose({"data": data(), "sensitivity": sensitivity(0.0, 0.01), "retrain": result},
                    "regression")


def test_counterfactuals_cut_by_the_flop_budget_say_so_in_the_evidence() -> None:
    d = diagnosed_at_length(retrain(baseline=[0.0, 0.0, 0.0], lr_up_x10=[0.9, 0.85, 0.88]),
                            cut=True, reproduces=True)
    assert d.primary_fault == "lr_too_low"
    assert "120 of the original training's 15625 optimizer steps" in d.findings[0].evidence[
        "cut_short"]
    assert "not_reproduced" not in d.findings[0].evidence
    # nothing restored, and the shortened baseline trained fine: both caveats on the symptom
    flat = diagnosed_at_length(retrain(baseline=[0.7, 0.72, 0.69], lr_up_x10=[0.7, 0.71, 0.7]),
                               cut=True, reproduces=False)
    assert flat.primary_fault == "flat_output"
    evidence = flat.findings[0].evidence
    assert "cut_short" in evidence and "at that length" in evidence["not_reproduced"]


def test_uncut_counterfactuals_carry_no_caveat() -> None:
    d = diagnosed_at_length(retrain(baseline=[0.0, 0.0, 0.0], lr_up_x10=[0.9, 0.85, 0.88]),
                            cut=False, reproduces=True)
    assert not {"cut_short", "not_reproduced"} & set(d.findings[0].evidence)


def test_a_weak_signal_is_judged_by_the_share_of_attainable_skill_it_recovers() -> None:
    """95/5 labels with a weak signal: class weights lift the balanced-accuracy gain from 0 to
    about 0.27, below the fixed bar (0.3) but most of what a reference learner gets (0.33)."""
    weighted = DECLARED | {"class_weights": {"tests": "class_imbalance"}}
    skills = {"baseline": [0.0, 0.0, 0.0], "class_weights": [0.27, 0.28, 0.26]}
    fixed = retrain(**skills)
    for name, declared in weighted.items():
        if name in fixed.details[keys.VARIANTS]:
            fixed.details[keys.VARIANTS][name].update(declared)
    results = {"data": data(), "sensitivity": sensitivity(0.0, 0.05), "retrain": fixed}
    assert not diagnose(results, "binary").findings[0].confirmed  # against the fixed bar
    fixed.metrics[keys.Retrain.ATTAINABLE.metric] = 0.33
    d = diagnose(results, "binary")
    assert d.primary_fault == "class_imbalance" and d.findings[0].confirmed
    assert d.findings[0].evidence["share_of_attainable"] == pytest.approx(0.82, abs=0.01)
    # a reference learner that gets more leaves the fixed bar in place
    fixed.metrics[keys.Retrain.ATTAINABLE.metric] = 0.9
    assert not diagnose(results, "binary").findings[0].confirmed
    # and noise is never a recovery, however little the data allows
    noise = retrain(baseline=[0.0, 0.0, 0.0], lr_up_x10=[0.08, 0.09, 0.07])
    noise.metrics[keys.Retrain.ATTAINABLE.metric] = 0.1
    quiet = {"data": data(), "sensitivity": sensitivity(0.0, 0.05), "retrain": noise}
    assert not diagnose(quiet, "binary").findings[0].confirmed


def test_any_rate_the_search_tried_is_adams_control() -> None:
    """SGD diverging at its typical rate: Adam(1e-3) restores it, and so does SGD two decades
    lower, found by the rate search. The rate is the cause, not the optimizer."""
    runs = retrain(baseline=[float("nan")] * 3, adam=[0.84, 0.86, 0.83],
                   **{"lr_down_x0.1": [-1.0, -1.0, -1.0], "lr_down_x0.01": [0.85, 0.86, 0.81]})
    with_declared(runs, "adam", control="baseline", learning_rate=1e-3)
    with_declared(runs, "lr_down_x0.1", tests="lr_too_high", learning_rate=1e-3,
                  rate_rung="down")
    with_declared(runs, "lr_down_x0.01", tests="lr_too_high", learning_rate=1e-4,
                  rate_rung="down")
    results = {"data": data(), "config": config(optimizer_is_sgd=1.0),
               "sensitivity": sensitivity(0.0, 0.01), "retrain": runs}
    d = diagnose(results, "regression")
    assert d.primary_fault == "lr_too_high"
    top = d.findings[0].evidence
    assert (top["counterfactual"], top["learning_rate_tried"]) == ("lr_down_x0.01", 1e-4)
    assert "optimizer_stalled" not in {f.fault for f in d.findings if f.severity != "info"}
    # without a rate that works, Adam's win is the optimizer's
    runs.metrics.update({keys.seed_skill("lr_down_x0.01", s): -1.0 for s in range(3)})
    assert diagnose(results, "regression").primary_fault == "optimizer_stalled"


def short_of_reference(headroom: float, **variants: list[float]) -> dict[str, ProbeResult]:
    """A 10-class model at skill 0.57 whose retrain probe measured `headroom` against the
    reference learner (and trained `variants`)."""
    runs = retrain(**variants)
    runs.metrics.update({keys.Retrain.HEADROOM.metric: headroom,
                         keys.Retrain.ATTAINABLE.metric: 0.57 + headroom})
    return {"data": data(imbalance_ratio=0.02, minority_fraction=0.015),
            "sensitivity": sensitivity(0.57, 0.9), "retrain": runs}


def test_a_skilled_model_far_below_the_reference_is_impaired_and_its_fix_confirmed() -> None:
    results = short_of_reference(0.34, baseline=[0.55, 0.58, 0.56],
                                 class_weights=[0.9, 0.91, 0.89])
    results["retrain"].details[keys.VARIANTS]["class_weights"]["tests"] = "class_imbalance"
    d = diagnose(results, "multiclass")
    assert (d.verdict, d.primary_fault) == ("impaired", "class_imbalance")
    assert d.findings[0].confirmed
    assert d.findings[0].evidence["headroom"] == pytest.approx(0.34)


def test_below_the_reference_with_no_fix_is_named_so_and_near_it_is_healthy() -> None:
    d = diagnose(short_of_reference(0.34, baseline=[0.55, 0.58, 0.56],
                                    lr_up_x10=[0.56, 0.57, 0.55]), "multiclass")
    assert (d.verdict, d.primary_fault) == ("impaired", "below_reference")
    assert d.findings[0].evidence["attainable_skill"] == pytest.approx(0.91)
    assert d.findings[0].evidence["ruled_out"] == ["lr_up_x10"]
    near = diagnose(short_of_reference(THRESHOLDS.headroom / 2, baseline=[0.55]), "multiclass")
    assert near.verdict == "healthy"


def test_the_change_that_removes_the_cause_beats_the_one_that_works_around_it() -> None:
    """Raw targets, training stopped after 2 epochs: standardized targets and a training as
    long as it should be both restore it. The short training is the cause; the standardized
    targets only made the short training suffice. Both stay in the evidence."""
    runs = retrain(baseline=[0.0, 0.01, 0.0], standardize_targets=[0.93, 0.92, 0.94],
                   train_longer=[0.9, 0.91, 0.9])
    with_declared(runs, "standardize_targets", tests="unscaled_targets",
                  works_around=["undertrained"])
    results = {"data": data(label_mean=2000.0, label_std=300.0),
               "config": config(train_epochs=2.0), "sensitivity": sensitivity(0.0, 0.01),
               "retrain": runs}
    d = diagnose(results, "regression")
    assert d.primary_fault == "undertrained" and d.findings[0].confirmed
    assert set(d.findings[0].evidence["also_restored_by"]) == {"standardize_targets"}
    assert [f.fault for f in d.findings[:2]] == ["undertrained", "unscaled_targets"]
    # without the declaration the targets win (root-cause order): the rule is what decides
    with_declared(runs, "standardize_targets", works_around=[])
    assert diagnose(results, "regression").primary_fault == "unscaled_targets"


def test_one_layers_activation_put_back_outranks_what_keeps_its_dead_units_alive() -> None:
    """An early layer's activation swapped leaves every ReLU after it dead. Putting that one
    layer's activation back restores the model; so do LeakyReLU everywhere (which speaks for
    the dead units) and Adam. The swapped activation is the cause, the dead units its
    symptom; both other changes stay in the evidence."""
    runs = retrain(baseline=[0.02, 0.0, 0.01], restore_activation=[0.9, 0.92, 0.91],
                   nonsaturating=[0.95, 0.96, 0.95], adam=[0.97, 0.96, 0.97])
    results = {"data": data(), "sensitivity": sensitivity(0.01, 0.01), "retrain": runs,
               "activations": ProbeResult("activations", metrics={
                   keys.Activations.DEAD_MAX.metric: 1.0,
                   keys.Activations.DEAD_MEAN.metric: 0.9})}
    d = diagnose(results, "regression")
    assert d.primary_fault == "saturated_activations" and d.findings[0].confirmed
    assert d.findings[0].evidence["counterfactual"] == "restore_activation"
    assert set(d.findings[0].evidence["also_restored_by"]) == {"nonsaturating", "adam"}
    assert "dead_relu" in [f.fault for f in d.findings[1:]]
    # without the declaration the dead units win (full static support, root-cause order)
    with_declared(runs, "restore_activation", outranks=[])
    assert diagnose(results, "regression").primary_fault == "dead_relu"


def test_an_unconfirmed_static_finding_never_outranks_a_confirmed_fix() -> None:
    """Labels the reference disputes on 30% of the rows (static, unconfirmed: training without
    them was tried and failed) and a lower rate that restored every seed: the rate is the
    cause, a critical finding with its full confidence."""
    runs = retrain(baseline=[0.10, 0.10, 0.08], lr_down_x0_1=[0.78, 0.78, 0.75],
                   relabel_disputed=[0.12, 0.1, 0.09])
    with_declared(runs, "lr_down_x0_1", tests="lr_too_high", rate_rung="down")
    with_declared(runs, "relabel_disputed", tests="bad_data", outranks=["class_imbalance"])
    runs.metrics.update({keys.Retrain.LABEL_ISSUE_SHARE.metric: 0.3,
                         keys.Retrain.LINEAR_REFERENCE.metric: 0.8})
    results = {"data": data(), "config": config(lr_log10_vs_typical=1.2),
               "sensitivity": sensitivity(0.1, 0.05), "retrain": runs}
    d = diagnose(results, "multiclass")
    assert d.primary_fault == "lr_too_high"
    assert d.findings[0].severity == "critical" and d.findings[0].confirmed
    assert d.findings[0].confidence >= 0.8
    # its own change was tried and failed: the disputed labels are ruled out, not a finding
    assert "bad_data" not in [f.fault for f in d.findings]


def test_a_definitive_static_cause_outranks_a_confirmed_one_never() -> None:
    """NaN rows (definitive static support) whose own change was not tried, and a confirmed
    change of input scale: the confirmed one is the primary fault."""
    runs = retrain(baseline=[0.0, 0.0, 0.0], standardize_inputs=[0.9, 0.9, 0.92])
    results = {"data": data(bad_rows=12.0, nan_cells=12.0), "sensitivity": sensitivity(0.0, 0.01),
               "retrain": runs}
    d = diagnose(results, "regression")
    assert d.primary_fault == "unscaled_inputs" and d.findings[0].confirmed
    assert [f.fault for f in d.findings[:2]] == ["unscaled_inputs", "bad_data"]


def test_disputed_labels_are_a_cause_only_when_training_without_them_restores() -> None:
    """A class relabelled in part: both balanced class weights and training without the
    disputed rows restore the model. The labels are the cause (the imbalance their counts
    show is theirs); without that confirmation the share alone never stands."""
    runs = retrain(baseline=[0.3, 0.32, 0.31], relabel_disputed=[0.85, 0.86, 0.84],
                   class_weights=[0.8, 0.82, 0.8])
    with_declared(runs, "relabel_disputed", tests="bad_data", outranks=["class_imbalance"])
    with_declared(runs, "class_weights", tests="class_imbalance")
    runs.metrics.update({keys.Retrain.LABEL_ISSUE_SHARE.metric: 0.14,
                         keys.Retrain.LINEAR_REFERENCE.metric: 0.9})
    results = {"data": data(imbalance_ratio=0.2), "sensitivity": sensitivity(0.31, 0.8),
               "retrain": runs}
    d = diagnose(results, "multiclass")
    assert d.primary_fault == "bad_data" and d.findings[0].confirmed
    assert d.findings[0].evidence["label_problem"] == "noisy"
    assert "class_imbalance" in [f.fault for f in d.findings[1:]]
    failed = retrain(baseline=[0.3, 0.32, 0.31], relabel_disputed=[0.31, 0.3, 0.33])
    with_declared(failed, "relabel_disputed", tests="bad_data")
    failed.metrics.update({keys.Retrain.LABEL_ISSUE_SHARE.metric: 0.14,
                           keys.Retrain.LINEAR_REFERENCE.metric: 0.9})
    results["retrain"] = failed
    assert diagnose(results, "multiclass").primary_fault != "bad_data"


def test_at_a_typical_rate_the_architecture_outranks_another_rate() -> None:
    """A deep sigmoid stack under Adam at 1e-3: ten times the rate restores it, and so do
    ReLU units, a little less well. At a typical rate the rate only compensates: the
    architecture is the cause, the rate stays in `also_restored_by`. Away from a typical rate
    the rung declares nothing and the rate wins."""
    runs = retrain(baseline=[0.0, 0.0, 0.0], lr_up_x10=[0.95, 0.96, 0.95],
                   nonsaturating=[0.8, 0.8, 0.8])
    with_declared(runs, "lr_up_x10", works_around=list(faults.training.ARCHITECTURE_FAULTS))
    results = {"data": data(), "config": config(optimizer_is_sgd=0.0),
               "sensitivity": sensitivity(0.0, 0.01), "retrain": runs}
    d = diagnose(results, "binary")
    assert d.primary_fault == "saturated_activations" and d.findings[0].confirmed
    assert "lr_up_x10" in d.findings[0].evidence["also_restored_by"]
    with_declared(runs, "lr_up_x10", works_around=[])
    assert diagnose(results, "binary").primary_fault == "lr_too_low"
