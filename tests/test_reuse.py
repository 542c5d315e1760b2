"""Nights on a real local Ray: a fleet run twice audits only what changed and reuses the
rest; a deadline shorter than the fleet defers what could not finish, and the next run
audits only those. Cases are the cheapest real ones (the tiny model, probes data and
config); history the planner reads is written as the fleet writes it. What `--fresh`, a
changed budget, a third night and an older Flatline's folder do is planned without Ray
(tests/test_schedule.py), from the same function `run_fleet` calls."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from test_fleet import _rows

from audit.evidence.results import CaseReport
from audit.fleet import FleetOptions, run_fleet
from audit.fleet.types import DEFERRED_EXIT
from audit.manifest.schema import load_manifest
from audit.reports import Store, summarize

pytestmark = pytest.mark.ray


def _quiet(**over: Any) -> FleetOptions:
    return FleetOptions(progress=False, handle_signals=False, **over)


def _fleet(folder: Path, tiny: dict[str, Path], n: int, **top: Any) -> Path:
    """`n` cases, each with its own copy of the tiny model and data."""
    for kind in ("models", "data"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(tiny["model"], folder / "models" / f"m{i:02d}.keras")
        shutil.copy(tiny["data"], folder / "data" / f"m{i:02d}.parquet")
    doc = {"name": "nightly", "output": "out", "resources": {"num_cpus": 1},
           "probes": ["data", "config"],
           "fleet": [{"models": "models/*.keras", "data": "data/{stem}.parquet"}], **top}
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return folder / "m.yaml"


def _retrained(path: Path) -> None:
    """Another model in the same file: what a nightly retraining leaves."""
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(path)


@pytest.fixture(scope="module")
def two_nights(module_ray: str, tiny_files: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("nights")
    manifest = _fleet(folder, tiny_files, 14)
    first = run_fleet(load_manifest(manifest), _quiet(run_id="night-1"))
    for name in ("m03", "m09"):
        _retrained(folder / "models" / f"{name}.keras")
    data = pq.read_table(folder / "data" / "m11.parquet")
    pq.write_table(data.set_column(3, "y", pa.compute.multiply(data["y"], 2.0)),
                   folder / "data" / "m11.parquet")
    second = run_fleet(load_manifest(manifest), _quiet(run_id="night-2"))
    return {"folder": folder, "manifest": manifest, "first": first, "second": second}


def test_the_second_night_audits_only_what_changed(two_nights: dict[str, Any]) -> None:
    out = two_nights["folder"] / "out"
    first, second = two_nights["first"], two_nights["second"]
    assert (first.n_ok, first.n_reused) == (14, 0)
    assert (second.n_ok, second.n_reused, second.exit_code) == (14, 11, 0)
    before = {r["name"]: r for r in _rows(out, "night-1")}
    after = {r["name"]: r for r in _rows(out, "night-2")}
    assert len(after) == 14
    audited = {name for name, r in after.items() if r["reused_from"] is None}
    assert audited == {"m03", "m09", "m11"}
    for name, row in after.items():
        if name in audited:
            assert row["case_id"] != before[name]["case_id"]
            continue
        assert row["reused_from"] == "night-1"
        for key in ("case_id", "verdict", "primary_fault", "status", "duration_s", "worker"):
            assert row[key] == before[name][key], (name, key)
    for table in ("findings", "metrics"):  # each run's tables complete on their own
        old = {(r["case_id"], r.get("fault") or r.get("metric")) for r in _rows_of(out, table,
                                                                                 "night-1")}
        new = {(r["case_id"], r.get("fault") or r.get("metric")) for r in _rows_of(out, table,
                                                                                 "night-2")}
        reused_ids = {after[n]["case_id"] for n in after if n not in audited}
        assert {k for k in new if k[0] in reused_ids} == {k for k in old if k[0] in reused_ids}
    run = _rows_of(out, "runs", "night-2")[0]
    assert (run["n_reused"], run["n_deferred"], run["n_ok"]) == (11, 0, 14)


def test_report_and_page_say_where_a_case_was_reused_from(two_nights: dict[str, Any],
                                                          tmp_path: Path) -> None:
    from audit.reports.html import write_html

    out = str(two_nights["folder"] / "out")
    (summary,) = summarize(out, "night-2", limit=20)
    assert summary.n_reused == 11
    lines = [c.reused for c in summary.cases if c.reused]
    assert len(lines) == 11 and all(line.startswith("reused from night-1 (") for line in lines)
    write_html(out, "night-2", tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert page.count("reused from night-1 (") >= 11 and "11 reused from earlier runs" in page


def _rows_of(output: Path, table: str, run_id: str) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect()
    cur = con.execute(f"select * from read_parquet('{output}/{table}/**/*.parquet', "
                      f"hive_partitioning=true, union_by_name=true) where run_id = ?",
                      [run_id])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_a_deadline_defers_what_cannot_finish_and_the_next_run_starts_with_it(
        module_ray: str, tiny_files: dict[str, Path], tmp_path: Path) -> None:
    manifest_path = _fleet(tmp_path, tiny_files, 4)
    manifest = load_manifest(manifest_path)
    cases = {c.name: c for c in manifest.cases()}
    store = Store(manifest.output_uri)
    # what an earlier night measured (it timed out there): m02 costs an hour, the rest 2 s
    for name, spec in cases.items():
        took = 3600.0 if name == "m02" else 2.0
        store.write_case("night-0", CaseReport(
            case_id=spec.case_id + "x", name=name, model=spec.model, data=spec.data,
            status="timeout", verdict="error", duration_s=took, finished_at=1.0))
    result = run_fleet(manifest, _quiet(run_id="short", deadline="30m"))
    assert (result.n_ok, result.n_deferred, result.exit_code) == (3, 1, DEFERRED_EXIT)
    rows = {r["name"]: r for r in _rows(tmp_path / "out", "short")}
    assert rows["m02"]["status"] == rows["m02"]["verdict"] == "deferred"
    assert rows["m02"]["started_at"] is None and "deadline" in rows["m02"]["error"]
    run = _rows_of(tmp_path / "out", "runs", "short")[0]
    assert run["n_deferred"] == 1 and run["deadline"] is not None
    deadline = run["deadline"].timestamp()
    for name in ("m00", "m01", "m03"):  # none started where it could not finish
        assert rows[name]["started_at"].timestamp() + 2.0 <= deadline
    (summary,) = summarize(str(tmp_path / "out"), "short")
    assert summary.n_deferred == 1 and summary.n_failed == 0

    after = run_fleet(manifest, _quiet(run_id="after"))
    assert (after.n_ok, after.n_reused, after.exit_code) == (4, 3, 0)
    audited = [r["name"] for r in _rows(tmp_path / "out", "after") if not r["reused_from"]]
    assert audited == ["m02"]
