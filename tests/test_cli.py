"""The `audit` command line: help everywhere, exit codes, one-line errors, no TensorFlow in the
CLI process, and run/report/query/validate/demo end to end against one local Ray."""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from audit.cli.app import app

pytestmark = pytest.mark.ray
AUDIT = str(Path(sys.executable).parent / "audit")
COMMANDS = ("demo", "run", "report", "query", "validate")


def _audit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "COLUMNS")}
    env["COLUMNS"] = "200"  # keep rich tables on one line per row
    return subprocess.run([AUDIT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def _write(folder: Path, doc: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return folder / "m.yaml"


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_the_cli_process_does_not_import_tensorflow() -> None:
    code = ("import audit.cli.app, sys; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_tables_follow_the_width_of_each_invocation_not_of_the_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """rich reads COLUMNS when a console is made; ours read it when they print, so one
    process running many commands (a test session, a notebook) renders each at its width."""
    from audit.cli import render

    monkeypatch.setenv("COLUMNS", "50")
    narrow = render.LiveConsole()
    assert (narrow.width, render.out.width, render.err.width) == (50, 50, 50)
    monkeypatch.setenv("COLUMNS", "250")
    assert (narrow.width, render.out.width, render.err.width) == (250, 250, 250)
    assert render.LiveConsole(width=90).width == 90  # an explicit width still holds


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    registered = {c.name or c.callback.__name__: c for c in app.registered_commands}
    doc = (registered[command].callback.__doc__ or "").strip()
    assert doc and doc.split("\n")[0][:40] in " ".join(result.output.split())


def test_validate_lists_the_cases_without_running(tmp_path: Path,
                                                  tiny_files: dict[str, Path]) -> None:
    path = _write(tmp_path, {"name": "v", "probes": ["data"], "cases": [
        {"name": "good", "model": str(tiny_files["model"]), "data": str(tiny_files["data"])},
        {"name": "gone", "model": "nowhere.keras", "data": str(tiny_files["data"])}]})
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "good-" in result.output and "gone-" in result.output
    assert "2 cases" in result.output and "1 files not found here" in result.output
    assert not (tmp_path / "reports").exists()


def test_a_bad_manifest_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "b", "cases": [{"model": "m.keras", "data": "d.csv",
                                                     "lable": "y"}]})
    for command in ("validate", "run"):
        line = _one_line_error(_audit(command, str(path)))
        assert "cases[0].lable: unknown key; did you mean 'label'?" in line


def test_no_cluster_is_one_line_and_exit_2(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    path = _write(tmp_path, {"name": "c", "cases": [
        {"model": str(tiny_files["model"]), "data": str(tiny_files["data"])}]})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    line = _one_line_error(_audit("run", str(path), "--address", f"127.0.0.1:{port}"))
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in line


def test_report_and_query_errors_are_one_line(tmp_path: Path) -> None:
    assert "no reports here" in _one_line_error(_audit("report", str(tmp_path)))
    line = _one_line_error(_audit("query", str(tmp_path), "select nope from cases"))
    assert "query failed" in line


# ---------------------------------------------------------------- end to end on one Ray


@pytest.fixture(scope="module")
def lambda_model(tiny_files: dict[str, Path]) -> Path:
    """A model with a Lambda layer: Keras refuses it unless the user trusts it."""
    import keras

    path = tiny_files["model"].parent / "lambda.keras"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2.0),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(path)
    return path


@pytest.fixture(scope="module")
def cli_run(module_ray: str, tiny_files: dict[str, Path], lambda_model: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`audit run` of two good cases, a trusted Lambda model and a corrupt model file."""
    folder = tmp_path_factory.mktemp("cli")
    good = {"model": str(tiny_files["model"]), "data": str(tiny_files["data"])}
    path = _write(folder, {"name": "cli", "output": "out", "resources": {"num_cpus": 1},
                           "probes": ["data", "config"], "cases": [
        {"name": "good-1", **good}, {"name": "good-2", **good},
        {"name": "lambda", "model": str(lambda_model), "data": str(tiny_files["data"])},
        {"name": "broken", "model": str(tiny_files["bad_model"]),
         "data": str(tiny_files["data"])}]})
    result = _audit("run", str(path), "--address", module_ray, "--run-id", "clirun",
                    "--trust-models", "--no-progress")
    return {"result": result, "manifest": path, "output": folder / "out"}


def test_run_exits_1_when_a_case_failed_and_says_where_the_report_is(cli_run: dict) -> None:
    result = cli_run["result"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert "run clirun finished: 4 cases, 3 ok, 1 error, 0 timeout" in result.stdout
    assert f"audit report {cli_run['output']} --run clirun" in result.stdout


def test_trust_models_reaches_the_cases(cli_run: dict) -> None:
    result = _audit("query", str(cli_run["output"]),
                    "select name, status, error from cases order by name", "--csv")
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["lambda"]["status"] == "ok", rows["lambda"]
    assert rows["broken"]["status"] == "error" and "corrupt.keras" in rows["broken"]["error"]


def test_report_shows_the_worst_cases_first_with_what_to_do(cli_run: dict) -> None:
    result = _audit("report", str(cli_run["output"]), "--run", "clirun")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    names = [n for n in (line.split("│")[1].strip() for line in lines) if n]
    assert names[0] == "broken" and set(names) == {"broken", "good-1", "good-2", "lambda"}
    assert "corrupt.keras" in lines[0]  # the error is its recommendation
    assert "run clirun (cli, finished): 4 cases" in result.stdout


def test_query_answers_sql_over_the_views(cli_run: dict) -> None:
    sql = "select run_id, status, count(*) as n from cases group by 1, 2 order by 2"
    raw = subprocess.run([AUDIT, "query", str(cli_run["output"]), sql, "--csv"],
                         capture_output=True, timeout=300)  # bytes: no newline translation
    assert raw.returncode == 0, raw.stderr
    assert b"\r" not in raw.stdout  # LF line ends, as shell tools read them
    assert list(csv.reader(io.StringIO(raw.stdout.decode()))) == [
        ["run_id", "status", "n"], ["clirun", "error", "1"], ["clirun", "ok", "3"]]


def test_resume_skips_finished_cases(cli_run: dict, module_ray: str) -> None:
    result = _audit("run", str(cli_run["manifest"]), "--address", module_ray,
                    "--resume", "clirun", "--trust-models", "--no-progress")
    assert result.returncode == 1  # the broken case is still broken
    assert "4 cases, 3 ok, 1 error, 0 timeout (4 from before)" in result.stdout
    line = _one_line_error(_audit("run", str(cli_run["manifest"]), "--address", module_ray,
                                  "--resume", "nosuchrun"))
    assert "--resume nosuchrun: no such run" in line
    # --retry-failed gives the failed case another run (it is still broken: error again)
    retried = _audit("run", str(cli_run["manifest"]), "--address", module_ray, "--resume",
                     "clirun", "--retry-failed", "--trust-models", "--no-progress")
    assert "4 cases, 3 ok, 1 error, 0 timeout (3 from before)" in retried.stdout, retried.stderr
    line = _one_line_error(_audit("run", str(cli_run["manifest"]), "--address", module_ray,
                                  "--retry-failed"))
    assert "--retry-failed needs the run" in line


def test_demo_builds_the_zoo_audits_it_and_prints_the_findings(module_ray: str,
                                                               tmp_path: Path) -> None:
    result = _audit("demo", "--folder", str(tmp_path), "--scenario", "multiclass_loss_mismatch",
                    "--probes", "data,config", "--address", module_ray, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if "multiclass_loss_mismatch" in line)
    assert "impaired" in row and "loss_mismatch" in row and "Use the loss that fits" in row
    assert (tmp_path / "demo.yaml").exists() and (tmp_path / "reports" / "runs").exists()
    assert f"zoo, manifest and report are in {tmp_path}" in result.stderr


def test_demo_takes_all_or_scenarios_not_both() -> None:
    line = _one_line_error(_audit("demo", "--all", "--scenario", "linear_healthy"))
    assert "--all or --scenario" in line
