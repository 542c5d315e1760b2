"""`audit diff` and the "since the previous run" summary, over hand-made reports.

Two nights of one fleet: each kind of change appears once, so every rule of `diff` is
exercised, and the CLI's exit codes (0 nothing regressed, 1 something did, 2 bad input) and
formats are checked end to end.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from report_data import T0, case, write_run
from typer.testing import CliRunner

from audit.cli.app import app
from audit.evidence.results import MetricRow
from audit.reports import (
    SKILL_NOISE_FLOOR,
    ReportError,
    Store,
    diff_runs,
    last_two_runs,
    summarize,
)

DAY = 86_400.0


def _nights(out: Path) -> None:
    """r1 then r2 of `nightly`, and r0 of another name (never compared with them)."""
    rng = np.random.default_rng(0)
    base = [case("went-flat", "healthy", rng, skill=0.9),
            case("new-fault", "impaired", rng, fault="class_imbalance"),
            case("skill-drop", "healthy", rng, skill=0.9),
            case("noise-only", "healthy", rng, skill=0.9),
            case("got-fixed", "flat", rng),
            case("steady", "flat", rng),
            case("gone", "healthy", rng, skill=0.8)]
    later = T0 + DAY
    new = [case("went-flat", "flat", rng, started=later),
           case("new-fault", "impaired", rng, fault="dead_relu", started=later),
           case("skill-drop", "healthy", rng, skill=0.7, started=later),
           case("noise-only", "healthy", rng, skill=0.9 - SKILL_NOISE_FLOOR / 2, started=later),
           case("got-fixed", "healthy", rng, skill=0.85, started=later),
           case("steady", "flat", rng, started=later),
           case("arrived", "impaired", rng, fault="lr_too_high", started=later)]
    store = Store(str(out))
    write_run(store, "r1", base)
    write_run(store, "r2", new, started=later)
    write_run(store, "other-1", [case("x", "healthy", rng)], name="weekly", started=later + DAY)


@pytest.fixture
def nights(tmp_path: Path) -> Path:
    _nights(tmp_path / "out")
    return tmp_path / "out"


def test_diff_lists_regressions_fixes_new_and_missing(nights: Path) -> None:
    result = diff_runs(str(nights), "r1", "r2")
    kinds = {c.name: (c.kind, c.reason) for c in result.changes}
    assert kinds == {
        "went-flat": ("regression", "healthy -> flat (lr_too_low)"),
        "new-fault": ("regression", "new primary fault dead_relu (was class_imbalance)"),
        "skill-drop": ("regression", "skill 0.900 -> 0.700 (more than the seed noise 0.050)"),
        "got-fixed": ("fix", "flat (lr_too_low) -> healthy"),
        "arrived": ("new", "new case (impaired)"),
        "gone": ("missing", "not in the new run"),
    }
    assert result.counts() == {"regression": 3, "fix": 1, "new": 1, "missing": 1,
                               "unchanged": 2}  # noise-only and steady
    assert [c.kind for c in result.changes] == ["regression"] * 3 + ["fix", "new", "missing"]
    assert result.exit_code == 1


def test_a_drop_within_the_seeds_spread_is_noise(tmp_path: Path) -> None:
    """Retraining skills that vary by 0.1 across seeds make a 0.15 drop noise."""
    rng = np.random.default_rng(1)
    before, after = case("m", "flat", rng, skill=0.3), case("m", "flat", rng, skill=0.15)
    for report, spread in ((before, 0.1), (after, 0.0)):
        report.metrics = [m for m in report.metrics if not m.metric.startswith("baseline.")]
        report.metrics += [
            MetricRow(probe="retrain", metric=f"baseline.skill.seed{s}", value=0.3 + spread * k)
            for s, k in ((0, -1), (1, 0), (2, 1))
        ]
    store = Store(str(tmp_path))
    write_run(store, "a", [before])
    write_run(store, "b", [after], started=T0 + DAY)
    assert diff_runs(str(tmp_path), "a", "b").changes == []
    write_run(store, "c", [case("m", "flat", rng, skill=-0.2)], started=T0 + 2 * DAY)
    (change,) = diff_runs(str(tmp_path), "a", "c").changes
    assert change.kind == "regression" and "seed noise 0.200" in change.reason


def test_last_two_runs_of_a_name(nights: Path) -> None:
    assert last_two_runs(str(nights), "nightly") == ("r1", "r2")
    with pytest.raises(ReportError, match=r"'weekly' has 1 finished run\(s\), need 2"):
        last_two_runs(str(nights), "weekly")


def test_cli_exit_codes_gate_a_pipeline(nights: Path) -> None:
    runner = CliRunner()
    regressed = runner.invoke(app, ["diff", str(nights), "r1", "r2"])
    assert regressed.exit_code == 1, regressed.output
    assert "went-flat" in regressed.output and "healthy -> flat" in regressed.output
    assert runner.invoke(app, ["diff", str(nights), "--last", "nightly"]).exit_code == 1
    same = runner.invoke(app, ["diff", str(nights), "r2", "r2"])
    assert same.exit_code == 0, same.output
    backwards = runner.invoke(app, ["diff", str(nights), "r2", "r1"])
    assert backwards.exit_code == 1  # new-fault's class_imbalance is new when seen backwards

    unknown = runner.invoke(app, ["diff", str(nights), "r1", "nope"])
    assert unknown.exit_code == 2
    assert "no run 'nope'; runs are ['other-1', 'r1', 'r2']" in unknown.output
    assert "Traceback" not in unknown.output
    assert runner.invoke(app, ["diff", str(nights)]).exit_code == 2
    assert runner.invoke(app, ["diff", str(nights), "r1", "r2", "--last", "x"]).exit_code == 2
    assert runner.invoke(app, ["diff", str(nights / "nowhere"), "r1", "r2"]).exit_code == 2


def test_cli_formats(nights: Path) -> None:
    runner = CliRunner()
    as_json = runner.invoke(app, ["diff", str(nights), "r1", "r2", "--format", "json"])
    doc = json.loads(as_json.stdout)
    assert (doc["base"], doc["new"], doc["counts"]["regression"]) == ("r1", "r2", 3)
    assert (doc["changes"][0]["name"], doc["changes"][0]["new"]["primary_fault"]) == (
        "new-fault",
        "dead_relu",
    )
    as_csv = runner.invoke(app, ["diff", str(nights), "r1", "r2", "--format", "csv"])
    assert "\r" not in as_csv.stdout  # LF line ends, as Unix tools read them
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["kind"] for r in rows].count("regression") == 3
    assert rows[0]["name"] == "new-fault" and rows[0]["new_fault"] == "dead_relu"
    assert runner.invoke(app, ["diff", str(nights), "r1", "r2", "--format", "xml"]).exit_code == 2


def test_report_says_what_changed_since_the_previous_run(nights: Path) -> None:
    (r2,) = summarize(str(nights), "r2")
    assert r2.since is not None and r2.since.base == "r1"
    (r1,) = summarize(str(nights), "r1")
    assert r1.since is None  # the first night has nothing to compare with
    (weekly,) = summarize(str(nights), "other-1")
    assert weekly.since is None  # another name
    shown = CliRunner().invoke(app, ["report", str(nights), "--run", "r2"])
    assert shown.exit_code == 0, shown.output
    assert "since run r1: 3 regressed, 1 fixed, 1 new, 1 missing, 2 unchanged" in shown.output
    assert "regressed went-flat: healthy -> flat (lr_too_low)" in shown.output
