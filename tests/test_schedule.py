"""Planning a night (`audit.fleet.schedule`) from real report folders, without Ray: what is
reused (and why not), the expected costs and the starting order, and the bad inputs that get
one line (a deadline past or unparseable, a negative `reuse_days`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from audit.cli.app import app
from audit.errors import FleetError, ManifestError
from audit.evidence.results import CaseReport, Finding
from audit.fleet import FleetOptions, run_fleet
from audit.fleet.progress import package_version
from audit.fleet.schedule import estimate_s, plan_night, preview
from audit.manifest.schema import load_manifest
from audit.reports import RunRow, Store
from audit.util.deadline import resolve_deadline

NOW = time.time()
DAY = 86400


def _manifest(folder: Path, names: list[str], **top: Any) -> Path:
    """A manifest of one case per name, each with its own (tiny, fake) model and data."""
    cases = []
    for name in names:
        for kind in ("models", "data"):
            path = folder / kind / f"{name}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{kind} of {name}".encode())
        cases.append({"name": name, "model": f"models/{name}.bin", "data": f"data/{name}.bin"})
    doc = {"name": "nightly", "output": "out", "probes": ["data", "config"], "cases": cases,
           **top}
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return folder / "m.yaml"


def _past_run(store: Store, run_id: str, cases: list[Any], *, status: str = "ok",
              took: dict[str, float] | None = None, ended: float = NOW - 3600,
              version: str | None = None, run_row: bool = True) -> None:
    """A run as the fleet writes it: one case row each (a finding on every one), then the
    run row."""
    for spec in cases:
        report = CaseReport(case_id=spec.case_id, name=spec.name, model=spec.model,
                            data=spec.data, status=status,
                            verdict="healthy" if status == "ok" else status,
                            started_at=ended - 10, finished_at=ended,
                            duration_s=(took or {}).get(spec.name, 10.0))
        report.findings.append(Finding(fault="no_skill", severity="info", confidence=0.5,
                                       confirmed=False, probe="data", evidence={"n": 1},
                                       recommendation="r"))
        store.write_case(run_id, report)
    if run_row:
        store.write_run(run_id, RunRow(name="nightly", status="finished", manifest="m",
                                       output=store.output, started_at=ended - 20,
                                       finished_at=ended, n_cases=len(cases),
                                       package_version=version or package_version()))


def _plan(store: Store, cases: list[Any], **kw: Any) -> Any:
    return plan_night(store, cases, run_id="tonight", version=package_version(),
                      reuse_days=kw.pop("reuse_days", 7), now=NOW, **kw)


def test_unchanged_ok_cases_are_reused_from_the_run_they_were_audited_in(
        tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, ["a", "b", "c", "d"]))
    cases = manifest.cases()
    store = Store(manifest.output_uri)
    _past_run(store, "n1", cases[:3])
    _past_run(store, "n1-err", cases[3:], status="error", ended=NOW - 1800)
    night = _plan(store, cases)
    assert sorted(night.reused) == sorted(c.case_id for c in cases[:3])
    assert [c.name for c in night.todo] == ["d"]  # error is never reused
    assert {r.audited_in for r in night.reused.values()} == {"n1"}
    assert night.reused[cases[0].case_id].line().startswith("reused from n1 (")

    # --fresh, reuse_days 0, and a changed budget (new ids) reuse nothing
    assert not _plan(store, cases, fresh=True).reused
    assert len(_plan(store, cases, fresh=True).todo) == 4
    assert not _plan(store, cases, reuse_days=0).reused
    doc = yaml.safe_load((tmp_path / "m.yaml").read_text())
    doc["budget"] = {"epochs": 3}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    changed = load_manifest(tmp_path / "m.yaml").cases()
    assert not _plan(store, changed).reused and len(_plan(store, changed).todo) == 4


def test_too_old_or_another_flatline_reuses_nothing_and_says_why_once(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, ["a", "b"]))
    cases = manifest.cases()
    store = Store(manifest.output_uri)
    _past_run(store, "old", cases, ended=NOW - 8 * DAY)
    assert not _plan(store, cases).reused  # past reuse_days: audited again to re-confirm
    assert len(_plan(store, cases, reuse_days=9).reused) == 2

    other = Store(str(tmp_path / "other"))
    _past_run(other, "v0", cases, version="0.0.9")
    night = _plan(other, cases)
    assert not night.reused and "0.0.9" in (night.note or "")
    # a report folder written before reuse existed: its files say schema 4
    older = Store(str(tmp_path / "older"))
    _past_run(older, "v4", cases)
    path = f"{older.folder('runs', 'v4')}/run.parquet"
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"flatline.schema_version": b"4"}), path)
    night = _plan(older, cases)
    assert not night.reused
    assert night.note and "schema 4" in night.note and night.note.count("nothing reused") == 1
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "m.yaml")],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "0 would be reused" in result.output


def test_a_reused_row_keeps_the_run_it_was_first_audited_in(tmp_path: Path) -> None:
    from audit.reports.history import case_rows, copy_case

    manifest = load_manifest(_manifest(tmp_path, ["a"]))
    (spec,) = manifest.cases()
    store = Store(manifest.output_uri)
    _past_run(store, "n1", [spec])
    copy_case(store, "n1", "n2", spec.case_id, "n1")
    store.write_run("n2", RunRow(name="nightly", status="finished", manifest="m",
                                 output=store.output, started_at=NOW - 60, finished_at=NOW - 50,
                                 n_cases=1, package_version=package_version()))
    (row,) = case_rows(store, "n2", ("reused_from", "status", "duration_s"))
    assert row["reused_from"] == "n1" and row["status"] == "ok"
    night = _plan(store, [spec])
    assert night.reused[spec.case_id].audited_in == "n1"  # not n2, which only copied it
    assert night.reused[spec.case_id].source_run == "n2"


def test_longest_first_from_history_and_estimates_and_deferred_first(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, ["short", "long", "mid", "owed", "new"]))
    cases = {c.name: c for c in manifest.cases()}
    store = Store(manifest.output_uri)
    # last night's timings (different ids: the files changed since, so nothing is reused)
    doc = yaml.safe_load((tmp_path / "m.yaml").read_text())
    doc["seed"] = 1
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    before = {c.name: c for c in load_manifest(tmp_path / "m.yaml").cases()}
    _past_run(store, "n1", [before[n] for n in ("short", "long", "mid")], status="timeout",
              took={"short": 2, "long": 500, "mid": 50})
    _past_run(store, "n2", [before["owed"]], status="deferred", ended=NOW - 60)
    night = _plan(store, list(cases.values()))
    assert not night.reused
    # last night's deferred case first, then longest first (the new case's estimate: ~5 s)
    assert [c.name for c in night.todo] == ["owed", "long", "mid", "new", "short"]
    assert night.deferred_before == {"owed"}
    assert night.cost_s[cases["long"].case_id] == 500
    assert night.cost_s[cases["new"].case_id] == pytest.approx(estimate_s(cases["new"]))


def test_an_estimate_grows_with_the_budget_and_the_files(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, ["a"]))
    (spec,) = manifest.cases()
    with_retrain = spec.model_copy(update={"probes": (*spec.probes, "retrain")})
    assert estimate_s(with_retrain) > estimate_s(spec) > 0
    (tmp_path / "data" / "a.bin").write_bytes(b"x" * 50_000_000)
    assert estimate_s(spec) > estimate_s(spec.model_copy(update={"data": "/nowhere"})) + 0.5


def test_validate_says_how_many_would_be_reused(tmp_path: Path) -> None:
    path = _manifest(tmp_path, ["a", "b", "c"])
    cases = load_manifest(path).cases()
    _past_run(Store(str(tmp_path / "out")), "n1", cases[:2])
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "3 cases" in result.output and "2 would be reused" in result.output
    assert result.output.count("reused from n1 (") == 2
    fresh = CliRunner().invoke(app, ["validate", str(path), "--fresh"], env={"COLUMNS": "250"})
    assert "0 would be reused" in fresh.output
    assert len(preview(str(tmp_path / "out"), cases, reuse_days=7).reused) == 2


# ---------------------------------------------------------------- bad input, one line


def test_bad_deadlines_and_reuse_days_get_one_line(tmp_path: Path) -> None:
    path = _manifest(tmp_path, ["a"])
    for execution, expected in [({"reuse_days": -1}, "execution.reuse_days: input should be "
                                 "greater than or equal to 0; received -1"),
                                ({"deadline": "soon"}, "execution.deadline: deadline 'soon' "
                                 "is not a time; expected a clock time")]:
        doc = {**yaml.safe_load(path.read_text()), "execution": execution}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
        with pytest.raises(ManifestError) as info:
            load_manifest(tmp_path / "bad.yaml")
        assert expected in str(info.value) and "\n" not in str(info.value)

    past = CliRunner().invoke(app, ["run", str(path), "--deadline", "2020-01-01T06:00Z"])
    assert past.exit_code == 2
    assert "--deadline: deadline '2020-01-01T06:00Z' is already past" in past.output
    garbled = CliRunner().invoke(app, ["run", str(path), "--deadline", "6 o'clock"])
    assert garbled.exit_code == 2 and "is not a time; expected" in garbled.output
    assert len(garbled.output.strip().splitlines()) == 1
    with pytest.raises(FleetError, match=r"execution.deadline: .* already past"):
        doc = {**yaml.safe_load(path.read_text()),
               "execution": {"deadline": "2020-01-01T06:00+01:00"}}
        (tmp_path / "past.yaml").write_text(yaml.safe_dump(doc))
        run_fleet(load_manifest(tmp_path / "past.yaml"), FleetOptions(progress=False))


def test_deadline_forms() -> None:
    start = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    assert resolve_deadline("5h", start) == start + 5 * 3600
    assert resolve_deadline("1h30m", start) == start + 5400
    assert resolve_deadline("06:00 UTC", start) == start + 22 * 3600  # tomorrow's
    assert resolve_deadline("09:00Z", start) == start + 3600  # today's
    assert resolve_deadline("10:00 Europe/Berlin", start) == start + 3600  # CET: UTC+1
    assert resolve_deadline("09:00+01:00", start) == start + 24 * 3600
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        resolve_deadline("06:00 Mars/Base", start)
    with pytest.raises(ValueError, match="no time at all"):
        resolve_deadline("0m", start)
