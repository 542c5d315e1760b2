"""The judgement rules, on hand-made probe results (no TensorFlow needed)."""

from __future__ import annotations

from audit.diagnose import THRESHOLDS, diagnose
from audit.probes import keys
from audit.results import ProbeResult


def sensitivity(skill: float, spread: float) -> ProbeResult:
    return ProbeResult("sensitivity", metrics={"skill": skill, "spread_ratio": spread,
                                               "nan_output_fraction": 0.0})


#: what each hand-made plan declares, as `audit.probes.retrain.plan_variants` would
DECLARED = {
    "standardize_inputs": {"tests": "unscaled_inputs"},
    "lr_up_x10": {"tests": "lr_too_low", "also_fixes": ["undertrained"]},
    "lr_down_x0.0033": {"tests": "lr_too_high", "also_fixes": ["exploding_gradient", "dead_relu"]},
    "drop_bad_rows": {"tests": "bad_data"},
    "clip_gradients": {"tests": "exploding_gradient", "also_fixes": ["lr_too_high"]},
    "train_longer": {"tests": "undertrained"},
    "default_init": {"also_fixes": ["dead_relu", "exploding_gradient", "saturated_activations",
                                    "vanishing_gradient"]},
    "nonsaturating": {"tests": "saturated_activations",
                      "also_fixes": ["dead_relu", "vanishing_gradient"]},
    "adam": {"tests": "optimizer_stalled", "control": "baseline",
             "also_fixes": ["vanishing_gradient", "saturated_activations"]},
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
    assert THRESHOLDS.dead_relu == 0.7


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
