"""The zoo's diagnosis is right for every scenario, and healthy models are never blamed."""

from __future__ import annotations

import pytest

from audit import faults
from audit.zoo import SCENARIOS, calibration, covered_faults

#: a constant label has no repair to try: its finding stands on the data probe alone
UNREPAIRABLE = ["binary_constant_label"]
#: mislabelled rows: named by confident learning over the reference learner, not by retraining
#: (validation labels are as noisy as the training ones, so no change can show a gain on them)
NOISY = ["multiclass_noisy_labels"]
FAULTY = [name for name, s in SCENARIOS.items()
          if s.expected_fault and s.shape != "export" and name not in UNREPAIRABLE + NOISY]
PAIRS = [name for name, s in SCENARIOS.items() if s.contributing]
#: labels the loss cannot read, and the verdict their mechanism gives: ids / 4 all cast to
#: class 0 (the output goes flat); ids / 255 too, but ten softmax outputs 20 epochs into that
#: still move with the input; near-integers move half of each class (it still responds)
LABELS = {"multiclass_fraction_labels": "flat", "multiclass_ids_over_255": "impaired",
          "multiclass_near_integer_labels": "impaired",
          "binary_constant_label": "impaired"}
EXPORTS_FLAT = [name for name, s in SCENARIOS.items() if s.expected_fault and s.shape == "export"]
HEALTHY = [name for name, s in SCENARIOS.items() if not s.expected_fault]


def test_every_cause_has_a_scenario_and_three_models_are_healthy() -> None:
    assert covered_faults() == set(faults.CAUSE_CODES)
    assert len(HEALTHY) >= 3
    assert {s.task for s in SCENARIOS.values()} == {"regression", "binary", "multiclass"}


@pytest.mark.parametrize("name", FAULTY)
def test_primary_fault_is_the_scenarios_fault(name: str, zoo_reports: dict) -> None:
    report = zoo_reports[name]
    assert report.status == "ok", report.error
    assert report.primary_fault == SCENARIOS[name].expected_fault, [
        (f.fault, f.severity, f.evidence.get("effect")) for f in report.findings
    ]
    assert report.verdict in ("flat", "impaired")
    primary = report.findings[0]
    assert primary.fault == report.primary_fault
    assert primary.severity == "critical"
    # confirmed by retraining across seeds, with the effect size in the evidence
    assert primary.confirmed
    assert primary.evidence["effect"] >= 0.2
    # racing stops a plan's seeds once 2 of 3 won: at least two, every one of them compared
    seeds = len(primary.evidence["skill_with_change"])
    assert 2 <= seeds <= 3
    assert len(primary.evidence["skill_own_config"]) == seeds
    assert primary.evidence["seeds_won"] * seeds >= 2 - 1e-9
    assert "retrained clone reached" in primary.recommendation


@pytest.mark.parametrize("name", EXPORTS_FLAT)
def test_a_flat_export_is_flat_with_no_invented_cause(name: str, zoo_reports: dict) -> None:
    """A SavedModel cannot be retrained and hides its head: the audit says flat, blames no
    static guess (its inputs' scaling is unseen) and says retraining was not possible."""
    report = zoo_reports[name]
    assert report.status == "ok", report.error
    assert (report.verdict, report.primary_fault) == ("flat", "flat_output")
    assert [f.fault for f in report.findings if f.severity != "info"] == ["flat_output"]
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses["retrain"] == "not_applicable"


def test_every_production_shape_has_a_healthy_and_a_faulty_scenario() -> None:
    shapes = {s.shape for s in SCENARIOS.values()} - {"mlp"}
    assert shapes == {"structured", "cnn", "text", "sequence", "two_heads", "export", "keras2"}
    for shape in shapes:
        faults_seen = {s.expected_fault for s in SCENARIOS.values() if s.shape == shape}
        assert None in faults_seen and len(faults_seen) >= 2, shape


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_models_are_never_blamed(name: str, zoo_reports: dict) -> None:
    report = zoo_reports[name]
    assert report.status == "ok", report.error
    assert report.verdict == "healthy"
    assert report.primary_fault is None
    assert all(f.severity == "info" for f in report.findings)


def test_classic_cases_match_what_training_shows(zoo_reports: dict) -> None:
    """Adam(1e-5) is flagged; raw 0..100 inputs train fine, whatever the write-up claims."""
    low = zoo_reports["linear_lr_too_low"]
    metrics = {(m.probe, m.metric): m.value for m in low.metrics}
    assert metrics[("sensitivity", "skill")] < 0
    assert low.findings[0].evidence["counterfactual"].startswith("lr_up")
    raw = zoo_reports["linear_raw_inputs"]
    raw_metrics = {(m.probe, m.metric): m.value for m in raw.metrics}
    assert raw_metrics[("sensitivity", "skill")] > 0.9
    assert raw.verdict == "healthy"


@pytest.mark.parametrize("name", PAIRS)
def test_a_two_change_bug_names_both_faults(name: str, zoo_reports: dict) -> None:
    """No single change restores it; a confirmed pair does. The primary fault names its
    partner, and the partner is a confirmed contributing finding naming the primary."""
    report, scenario = zoo_reports[name], SCENARIOS[name]
    primary = report.findings[0]
    assert (primary.fault, primary.evidence["with"]) == (scenario.expected_fault,
                                                         scenario.contributing)
    assert primary.evidence["pair"].count("+") == 1 and len(primary.evidence["skill_alone"]) == 2
    assert max(primary.evidence["skill_alone"].values()) < 0.3  # neither part alone restores
    partner = [f for f in report.findings if f.fault == scenario.contributing]
    assert len(partner) == 1 and partner[0].confirmed and partner[0].severity == "warning"
    assert partner[0].evidence["with"] == scenario.expected_fault
    metrics = {(m.probe, m.metric): m.value for m in report.metrics}
    assert metrics[("retrain", "pairs.tried")] >= 1
    assert metrics[("retrain", "pairs.trainings")] >= 3  # each pair over the seeds


@pytest.mark.parametrize("name", NOISY)
def test_mislabelled_rows_are_bad_data_not_an_imbalance(name: str, zoo_reports: dict) -> None:
    """A class relabelled at random looks imbalanced by its counts (and class weights even
    help), but the rows dispute their labels: bad_data, with the share and example rows."""
    report = zoo_reports[name]
    assert (report.verdict, report.primary_fault) == ("impaired", "bad_data")
    evidence = report.findings[0].evidence
    assert evidence["label_problem"] == "noisy"
    assert 0.1 <= evidence["label_issue_share"] <= 0.3  # 0.23 of the rows were relabelled
    assert 5 <= len(evidence["label_issue_rows"]) <= 10
    assert all(f.fault != "class_imbalance" or f.severity != "critical" for f in report.findings)


@pytest.mark.parametrize("name", list(LABELS))
def test_labels_the_loss_cannot_read_are_bad_data_with_the_evidence(name: str,
                                                                   zoo_reports: dict) -> None:
    report = zoo_reports[name]
    assert report.primary_fault == "bad_data"
    assert report.verdict == LABELS[name]
    top = report.findings[0]
    assert top.evidence["label_problem"]
    if name in UNREPAIRABLE:
        assert not top.confirmed and top.evidence["label_problem"].startswith(
            "the label is constant")
        # nothing to learn: the counterfactuals were not trained at all, and the report says why
        why = [m.detail for m in report.metrics if (m.probe, m.metric) == ("retrain", "error")]
        assert why and "settles the case: the label is constant" in why[0]
    else:  # the mechanical repair (multiply back, round) was tried and restored the model
        assert top.confirmed and top.evidence["counterfactual"] == "repair_labels"


def test_adam_is_blamed_only_against_its_rate_control(zoo_reports: dict) -> None:
    """Optimizer stalls: Adam restores, the own SGD at its typical rate (here the baseline)
    does not. Rate too high: SGD at the typical rate restores, so Adam's success is the
    rate's, and no optimizer fault is raised."""
    stalled = zoo_reports["regression_optimizer_stalled"].findings[0]
    assert stalled.evidence["controls"]["baseline"]["restored"] is False
    high = zoo_reports["regression_lr_too_high"]
    assert "optimizer_stalled" not in {f.fault for f in high.findings if f.severity != "info"}


def test_confidence_is_calibrated_on_the_zoo(zoo_reports: dict) -> None:
    """Of findings at confidence 0.8 or more, at least 80% name the scenario's fault (the
    table is in benchmarks/README.md)."""
    table = calibration({name: [(f.fault, f.confidence) for f in report.findings]
                         for name, report in zoo_reports.items()})
    top = table[-1]
    assert top["low"] == 0.8 and top["findings"] >= len(FAULTY)
    assert top["accuracy"] >= 0.8, table


def test_the_demos_default_scenarios_show_every_verdict(zoo_reports: dict) -> None:
    """`audit demo` without options audits DEMO_SCENARIOS: a newcomer sees each verdict."""
    from audit.cli.demo import DEMO_SCENARIOS

    verdicts = {zoo_reports[name].verdict for name in DEMO_SCENARIOS}
    assert verdicts == {"healthy", "flat", "impaired"}
