"""The report: table layout and schema, atomic per-case writes, DuckDB views, summaries.

Reports are written from hand-made `CaseReport`s (no Ray, no TensorFlow) and read back with
the query the design documents.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit import faults
from audit.evidence.results import CaseReport, Finding, MetricRow
from audit.reports import (
    SCHEMA_VERSION,
    SCHEMAS,
    ReportError,
    RunRow,
    Store,
    query,
    run_query,
    summarize,
)

T0 = 1_790_000_000.0


def _report(name: str, verdict: str = "healthy", fault: str | None = None,
            status: str = "ok", error: str | None = None) -> CaseReport:
    findings = (
        []
        if fault is None
        else [
            Finding(
                fault=fault,
                severity="critical",
                confidence=0.8,
                confirmed=True,
                probe="retrain",
                evidence={"skill": 0.01, "lr": [1e-5]},
                recommendation=faults.get(fault).fix,
            )
        ]
    )
    return CaseReport(
        case_id=f"{name}-0123456789ab",
        name=name,
        model=f"/m/{name}.keras",
        data=f"/d/{name}.parquet",
        task="regression",
        status=status,
        verdict=verdict,
        primary_fault=fault,
        error=error,
        started_at=T0,
        finished_at=T0 + 2,
        duration_s=2.0,
        attempts=1,
        node="127.0.0.1",
        gpu_ids=["0"],
        findings=findings,
        metrics=[
            MetricRow(probe="data", metric="rows", value=64.0),
            MetricRow(probe="data", metric="duration_s", value=0.1, detail="ok"),
        ],
        worker="actor-1",
    )


def _run(n: int, status: str = "finished") -> RunRow:
    return RunRow(
        name="nightly",
        status=status,
        manifest="/jobs/n.yaml",
        output="out",
        started_at=T0,
        finished_at=T0 + 60,
        n_cases=n,
        n_ok=n,
        settings={"seed": 0},
        package_version="0.1.0",
    )


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """Two runs: r1 with four cases (one per verdict) and its run row; r2 unfinished."""
    store = Store(str(tmp_path / "out"))
    for report in (
        _report("ok-model"),
        _report("flat-model", "flat", "lr_too_low"),
        _report("meh-model", "impaired", "class_imbalance"),
        _report("broken", "error", status="error", error="/m/broken.keras: bad"),
    ):
        store.write_case("r1", report)
    store.write_run("r1", _run(4))
    store.write_case("r2", _report("ok-model"))
    return tmp_path / "out"


def _documented(output: Path, table: str) -> str:
    return (
        f"read_parquet('{output}/{table}/**/*.parquet', hive_partitioning=true, union_by_name=true)"
    )


def test_layout_is_hive_partitioned_per_case(written: Path) -> None:
    files = sorted(str(p.relative_to(written)) for p in written.rglob("*") if p.is_file())
    cid = "ok-model-0123456789ab.parquet"
    assert "runs/run_id=r1/run.parquet" in files
    for table in ("cases", "findings", "metrics"):
        assert f"{table}/run_id=r1/{cid}" in files and f"{table}/run_id=r2/{cid}" in files
    assert len(files) == 1 + 3 * 5  # run row + three tables x five cases, no temp files
    assert "runs/run_id=r2/run.parquet" not in files  # r2 never finished


def test_documented_query_reads_every_table_with_run_id_from_the_folder(written: Path) -> None:
    con = duckdb.connect()
    rows = con.execute(
        f"select run_id, name, status, verdict, gpu_ids, attempts "
        f"from {_documented(written, 'cases')} order by run_id, name"
    ).fetchall()
    assert rows[0] == ("r1", "broken", "error", "error", ["0"], 1)
    assert [r[0] for r in rows] == ["r1"] * 4 + ["r2"]
    ((fault, evidence, confirmed),) = con.execute(
        f"select fault, evidence, confirmed from {_documented(written, 'findings')} "
        "where run_id = 'r1' and case_id like 'flat%'"
    ).fetchall()
    assert (fault, confirmed) == ("lr_too_low", True) and '"skill": 0.01' in evidence
    assert con.execute(f"select count(*) from {_documented(written, 'metrics')}").fetchone() == (
        10,
    )
    run = con.execute(
        f"select run_id, status, n_cases, package_version, settings "
        f"from {_documented(written, 'runs')}"
    ).fetchall()
    assert run == [("r1", "finished", 4, "0.1.0", '{"seed": 0}')]


def test_files_carry_the_schema_version_and_no_run_id(written: Path) -> None:
    for table in ("runs", "cases", "findings", "metrics"):
        path = next((written / table).rglob("*.parquet"))
        schema = pq.read_schema(path)
        assert schema.metadata[b"flatline.schema_version"] == SCHEMA_VERSION.encode()
        assert "run_id" not in schema.names
        assert schema.remove_metadata() == SCHEMAS[table]


def test_views_answer_the_design_query(written: Path) -> None:
    columns, rows = query(
        str(written), "select fault, count(*) from findings group by 1 order by 1"
    )
    assert rows == [("class_imbalance", 1), ("lr_too_low", 1)] and columns[0] == "fault"
    _, rows = query(str(written), "select run_id, count(*) from cases group by 1 order by 1")
    assert rows == [("r1", 4), ("r2", 1)]


def test_views_exist_even_when_a_table_has_no_files(tmp_path: Path) -> None:
    Store(str(tmp_path)).write_case("r1", _report("a"))  # no run row yet
    _, rows = query(str(tmp_path), "select count(*) from runs")
    assert rows == [(0,)]
    _, rows = query(str(tmp_path), "select run_id, count(*) from findings group by 1")
    assert rows == []  # a healthy case writes an empty findings file


def test_older_files_without_new_columns_still_read(written: Path) -> None:
    old = SCHEMAS["cases"].remove(SCHEMAS["cases"].get_field_index("worker"))
    row = {n: None for n in old.names} | {"case_id": "old-1", "name": "old", "status": "ok"}
    folder = written / "cases" / "run_id=r0"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([row], schema=old), folder / "old-1.parquet")
    _, rows = query(str(written), "select name, worker from cases where run_id = 'r0'")
    assert rows == [("old", None)]


def test_bad_sql_is_a_one_line_report_error(written: Path) -> None:
    with pytest.raises(ReportError, match="query failed") as info:
        query(str(written), "select nope from cases")
    assert "\n" not in str(info.value)


def test_a_failed_write_leaves_neither_a_half_file_nor_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(str(tmp_path))

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ReportError, match=r"cannot write .*findings.*: disk full"):
        store.write_case("r1", _report("a"))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    store.write_case("r1", _report("a"))
    assert store.case_ids("r1") == {"a-0123456789ab"}


def test_rewriting_a_case_replaces_it(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.write_case("r1", _report("a", status="error", verdict="error", error="boom"))
    store.write_case("r1", _report("a"))
    _, rows = query(str(tmp_path), "select status from cases")
    assert rows == [("ok",)]
    assert store.case_statuses("r1") == {"ok": 1}


def test_store_accepts_file_uris(tmp_path: Path) -> None:
    store = Store(f"file://{tmp_path}/out")
    store.write_case("r1", _report("a"))
    assert (tmp_path / "out" / "cases" / "run_id=r1" / "a-0123456789ab.parquet").exists()
    _, rows = query(f"file://{tmp_path}/out", "select count(*) from metrics")
    assert rows == [(2,)]


def test_unsafe_run_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not a safe slug"):
        Store(str(tmp_path)).write_case("../evil", _report("a"))


def test_summary_puts_the_worst_cases_first_with_recommendations(written: Path) -> None:
    (r1,) = summarize(str(written), "r1")
    assert [c.name for c in r1.cases] == ["flat-model", "meh-model", "broken", "ok-model"]
    assert r1.cases[0].recommendation == faults.get("lr_too_low").fix
    assert r1.cases[2].recommendation == "/m/broken.keras: bad"
    assert r1.verdicts == {"healthy": 1, "flat": 1, "impaired": 1, "error": 1}
    assert r1.faults == {"class_imbalance": 1, "lr_too_low": 1}
    assert (r1.status, r1.name, r1.n_cases) == ("finished", "nightly", 4)


def test_summary_of_every_run_and_limits(written: Path) -> None:
    summaries = summarize(str(written), limit=2)
    assert [s.run_id for s in summaries] == ["r1", "r2"]
    assert (len(summaries[0].cases), summaries[0].more) == (2, 2)
    assert summaries[1].status == "incomplete"


def test_summary_errors_name_what_is_missing(written: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no run 'r9'; runs are \['r1', 'r2'\]"):
        summarize(str(written), "r9")
    with pytest.raises(ReportError, match="no reports here"):
        summarize(str(tmp_path / "empty"))


def test_timestamps_are_utc(written: Path) -> None:
    _, rows = query(str(written), "select epoch(started_at) from cases limit 1")
    assert rows[0][0] == pytest.approx(T0)


# ---------------------------------------------------------------- schema v2 (issue 13/14)


def _v1_case_file(folder: Path, case_id: str, name: str) -> None:
    """A cases file as version 1 wrote it: without `output` and `node_id`."""
    old = pa.schema([f for f in SCHEMAS["cases"] if f.name not in ("output", "node_id")])
    row = {n: None for n in old.names} | {
        "case_id": case_id,
        "name": name,
        "status": "ok",
        "verdict": "healthy",
        "gpu_ids": [],
    }
    table = pa.Table.from_pylist([row], schema=old).replace_schema_metadata(
        {b"flatline.schema_version": b"1"}
    )
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{case_id}.parquet")


def test_cases_carry_output_and_node_id(tmp_path: Path) -> None:
    report = _report("a")
    report.output, report.node_id = "churn_head", "f" * 56
    Store(str(tmp_path)).write_case("r1", report)
    _, rows = query(str(tmp_path), "select output, node_id from cases")
    assert rows == [("churn_head", "f" * 56)]
    names = SCHEMAS["cases"].names
    assert names.index("node_id") == names.index("output") + 1 > names.index("worker")


def test_version_1_reports_still_read(written: Path) -> None:
    _v1_case_file(written / "cases" / "run_id=r0", "old-1", "old")
    con = duckdb.connect()
    rows = con.execute(
        f"select run_id, name, worker from {_documented(written, 'cases')} where run_id = 'r0'"
    ).fetchall()
    assert rows == [("r0", "old", None)]
    _, rows = query(str(written), "select name, output, node_id from cases where run_id = 'r0'")
    assert rows == [("old", None, None)]
    (r0,) = summarize(str(written), "r0")
    assert (r0.n_cases, r0.verdicts, r0.unreadable) == (1, {"healthy": 1}, [])


def test_views_have_new_columns_even_over_only_old_files(tmp_path: Path) -> None:
    _v1_case_file(tmp_path / "cases" / "run_id=r0", "old-1", "old")
    _, rows = query(str(tmp_path), "select name, node_id from cases")
    assert rows == [("old", None)]


def test_one_column_is_one_edit(tmp_path: Path) -> None:
    """Schemas and row builders come from one list: every column is filled from its source."""
    from audit.reports.columns import COLUMNS, case_tables

    report = _report("flat-model", "flat", "lr_too_low")
    tables = case_tables(report)
    for table in ("cases", "findings", "metrics"):
        assert tables[table].schema == SCHEMAS[table]
        assert [c.name for c in COLUMNS[table]] == SCHEMAS[table].names
    assert tables["cases"].column("worker")[0].as_py() == "actor-1"
    assert list(tables) == ["findings", "metrics", "cases"]  # the done marker goes last


def test_probe_details_are_persisted_as_json_rows() -> None:
    """The engine keeps a probe's details as a dict; the report stores them as JSON (NaN as
    null), beside the text notes of other rows."""
    import json

    from audit.engine import metric_rows
    from audit.evidence.results import ProbeResult
    from audit.reports.columns import case_tables

    raw = {"class_counts": {"0": 3, "1": 1}, "ratio": float("nan")}
    rows = metric_rows(
        {
            "data": ProbeResult("data", metrics={"rows": 4.0}, details=raw),
            "config": ProbeResult("config", metrics={"params": 9.0}),
        }
    )
    (details,) = [r for r in rows if r.metric == "details"]
    assert details.probe == "data" and details.detail == raw
    report = CaseReport("c1", "c", "m", "d", metrics=rows)
    stored = case_tables(report)["metrics"].to_pylist()
    (row,) = [r for r in stored if r["metric"] == "details"]
    assert json.loads(row["detail"]) == {"class_counts": {"0": 3, "1": 1}, "ratio": None}
    assert {r["metric"]: r["detail"] for r in stored if r["probe"] == "config"} == {
        "duration_s": "ok",
        "params": None,
    }


# ---------------------------------------------------------------- unreadable files (issue 13)


def _break(written: Path) -> tuple[Path, Path]:
    """A truncated cases file (a crashed copy) and another tool's Parquet under findings/."""
    truncated = written / "cases" / "run_id=r1" / "ok-model-0123456789ab.parquet"
    truncated.write_bytes(truncated.read_bytes()[:40])
    foreign = written / "findings" / "run_id=r1" / "export.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), foreign)
    return truncated, foreign


def test_readers_skip_unreadable_files_and_name_them(
    written: Path, caplog: pytest.LogCaptureFixture
) -> None:
    truncated, foreign = _break(written)
    with caplog.at_level("WARNING", logger="audit.reports"):
        result = run_query(str(written), "select run_id, count(*) from cases group by 1 order by 1")
    assert result.rows == [("r1", 3), ("r2", 1)]
    assert [(u.path, u.reason.split(" (")[0]) for u in result.unreadable] == [
        (str(truncated), "not a readable Parquet file"),
        (str(foreign), "not a findings file: no column case_id, fault"),
    ]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and warned[0].startswith(f"skipped unreadable file {truncated}")

    (r1,) = summarize(str(written), "r1")
    assert r1.n_cases == 3 and len(r1.unreadable) == 2


def test_resume_reruns_a_case_whose_file_is_unreadable(written: Path) -> None:
    truncated, _ = _break(written)
    store = Store(str(written))
    assert "ok-model-0123456789ab" not in store.case_ids("r1")
    assert store.case_statuses("r1") == {"ok": 2, "error": 1}
    assert [u.path for u in store.unreadable] == [str(truncated)]
    store.write_case("r1", _report("ok-model"))  # what the resumed run writes
    assert "ok-model-0123456789ab" in Store(str(written)).case_ids("r1")


def test_a_file_with_a_run_id_column_or_a_wrong_type_is_foreign(tmp_path: Path) -> None:
    Store(str(tmp_path)).write_case("r1", _report("a"))
    folder = tmp_path / "cases" / "run_id=r1"
    pq.write_table(
        pa.table(
            {
                "case_id": ["b"],
                "name": ["b"],
                "status": ["ok"],
                "verdict": ["healthy"],
                "run_id": ["r1"],
            }
        ),
        folder / "b.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "case_id": ["c"],
                "name": ["c"],
                "status": ["ok"],
                "verdict": ["healthy"],
                "attempts": ["one"],
            }
        ),
        folder / "c.parquet",
    )
    result = run_query(str(tmp_path), "select name from cases")
    assert result.rows == [("a",)]
    reasons = sorted(u.reason for u in result.unreadable)
    assert reasons == [
        "not a cases file: column attempts is string, expected int64",
        "not a report file: it has a run_id column (the run id is the folder name)",
    ]


def test_cli_report_and_query_warn_once_per_file_and_count(written: Path) -> None:
    from typer.testing import CliRunner

    from audit.cli.app import app

    truncated, _ = _break(written)
    runner = CliRunner()
    shown = runner.invoke(app, ["report", str(written), "--run", "r1"])
    assert shown.exit_code == 0, shown.output
    assert shown.stderr.count("warning: skipped unreadable file") == 2
    assert str(truncated) in shown.stderr.replace("\n", "")
    assert "2 unreadable files skipped" in shown.stdout
    asked = runner.invoke(app, ["query", str(written), "select count(*) from findings", "--csv"])
    assert asked.exit_code == 0, asked.output
    assert asked.stdout.splitlines() == ["count_star()", "2"]
    assert "2 unreadable files skipped" in asked.stderr  # every view is read


def test_a_report_of_one_run_opens_only_its_files(written: Path) -> None:
    other = written / "cases" / "run_id=r2" / "ok-model-0123456789ab.parquet"
    other.write_bytes(b"PAR1")
    store = Store(str(written))
    (r1,) = summarize(store, "r1")
    assert r1.n_cases == 4 and store.unreadable == []  # r2's broken file never opened
    (r2,) = summarize(store, "r2")
    assert r2.n_cases == 0 and [u.path for u in r2.unreadable] == [str(other)]


def test_run_status_reads_the_run_row(written: Path) -> None:
    store = Store(str(written))
    assert (store.run_status("r1"), store.run_status("r2")) == ("finished", None)
    (written / "runs" / "run_id=r1" / "run.parquet").write_bytes(b"cut")
    assert Store(str(written)).run_status("r1") is None
