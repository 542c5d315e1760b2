"""Chaos on a real local Ray: a worker killed while it writes, two runs into one output at
once, and a disk that fills. Each test checks that no case is lost, none is reported twice, and
every file a reader can see is whole.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from audit.fleet import FleetOptions, run_fleet
from audit.fleet.testing import Injection
from audit.manifest.schema import Manifest, load_manifest

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent


def _manifest(folder: Path, files: dict[str, Path], names: list[str], output: Path | str = "out",
              **top: Any) -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": "chaos", "output": str(output), "resources": {"num_cpus": 1},
           "probes": ["data", "config"], **top,
           "cases": [{"name": n, "model": str(files["model"]), "data": str(files["data"])}
                     for n in names]}
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return load_manifest(folder / "m.yaml")


def _rows(output: Path, run_id: str) -> list[tuple[Any, ...]]:
    """(name, status, attempts, error) of a run's cases, through the documented query."""
    return duckdb.sql(
        f"select name, status, attempts, error from read_parquet('{output}/cases/**/*.parquet', "
        f"hive_partitioning=true, union_by_name=true) where run_id = '{run_id}' order by name"
    ).fetchall()


def _visible_files_are_whole(output: Path) -> list[Path]:
    """Every file a reader's glob sees (`*.parquet`, not hidden) opens as Parquet."""
    files = [p for p in output.rglob("*.parquet") if not p.name.startswith(".")]
    for path in files:
        pq.read_metadata(path)  # raises on a torn file (no footer)
    return files


def _quiet(**over: Any) -> FleetOptions:
    return FleetOptions(progress=False, handle_signals=False, **over)


def test_a_worker_killed_while_writing_leaves_no_partial_file_and_the_case_ends_once(
        module_ray: str, tiny_files: dict[str, Path], tmp_path: Path) -> None:
    """The worker dies after the case's first report file and halfway through the next one:
    readers never see the torn file, the case is retried on a fresh worker and ends once."""
    manifest = _manifest(tmp_path, tiny_files, ["calm", "dies", "steady"],
                         execution={"max_attempts": 2})
    dying = Injection(kind="exit_while_writing", attempts=1)
    result = run_fleet(manifest, _quiet(run_id="torn"), faults={"dies": dying})
    out = tmp_path / "out"
    assert (result.n_ok, result.n_failed, result.exit_code) == (3, 0, 0)
    rows = _rows(out, "torn")
    assert [(r[0], r[1], r[2]) for r in rows] == [("calm", "ok", 1), ("dies", "ok", 2),
                                                  ("steady", "ok", 1)]
    files = _visible_files_are_whole(out)
    assert len(files) == 3 * 3 + 1  # findings, metrics, cases per case; the run row
    torn = list(out.rglob(".*.tmp"))  # the killed write's temp sibling: hidden, never read
    assert len(torn) == 1 and torn[0].read_bytes().startswith(b"PAR1")


def _audit(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "audit"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_runs_into_one_output_at_once_each_read_their_own_cases(
        module_ray: str, tiny_files: dict[str, Path], tmp_path: Path) -> None:
    """Two `audit run`s of one manifest into one output, at the same time, on one cluster:
    both finish, neither sees the other's cases, every file is whole; the drivers leave no
    file in their temp folder and the workers none in theirs."""
    names = [f"c{i}" for i in range(4)]
    manifest = _manifest(tmp_path / "m", tiny_files, names, output=tmp_path / "out",
                         resources={"num_cpus": 0.5})
    driver_tmp, worker_tmp = tmp_path / "driver-tmp", tmp_path / "worker-tmp"
    driver_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(driver_tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = ("run", str(manifest.source), "--address", module_ray, "--no-progress",
            "--max-concurrency", "2", "--temp-dir", str(worker_tmp))
    procs = [_audit(*args, env=env) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    run_ids = []
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr[-3000:]
        line = next(s for s in stdout.splitlines() if s.startswith("run "))
        assert line.endswith("finished: 4 cases, 4 ok, 0 error, 0 timeout"), line
        run_ids.append(line.split()[1])
    assert run_ids[0] != run_ids[1]
    out = tmp_path / "out"
    for run_id in run_ids:
        assert [(r[0], r[1]) for r in _rows(out, run_id)] == [(n, "ok") for n in names]
        report = subprocess.run([str(BIN / "audit"), "report", str(out), "--run", run_id],
                                capture_output=True, text=True, timeout=120, env=env)
        # its own 4 cases; the other run (same name) appears only as "since run ..."
        other = run_ids[1 - run_ids.index(run_id)]
        assert report.returncode == 0 and f"run {run_id}" in report.stdout, report.stdout
        assert all(line.lstrip().startswith("since run") for line in report.stdout.splitlines()
                   if other in line), report.stdout
    assert len(_visible_files_are_whole(out)) == 2 * (4 * 3 + 1)
    assert not list(out.rglob(".*.tmp"))
    assert list(driver_tmp.iterdir()) == []
    assert [p.name for p in worker_tmp.iterdir()] == ["flatline-workers"]
    assert list((worker_tmp / "flatline-workers").iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 2 MiB tmpfs (a disk that can fill), unmounted afterwards; skipped where mounting is
    not permitted."""
    folder = tmp_path / "small"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_ends_cases_as_error_naming_no_space_and_nothing_is_corrupt(
        module_ray: str, tiny_files: dict[str, Path], tmp_path: Path, small_disk: Path) -> None:
    """The output's disk is full: each case ends `error` naming "No space" (one line each), the
    run stops cleanly with exit 2 and one line, nothing torn is left; once space is back, the
    same run id finishes every case exactly once."""
    output = small_disk / "out"
    output.mkdir()
    names = ["a", "b", "c"]
    manifest = _manifest(tmp_path / "m", tiny_files, names, output=output)
    filler = small_disk / f"filler-{uuid.uuid4().hex[:6]}"
    with filler.open("wb") as fill, pytest.raises(OSError, match="No space"):
        while True:
            fill.write(b"\0" * 65536)
            fill.flush()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = ("run", str(manifest.source), "--address", module_ray, "--no-progress",
            "--run-id", "full-disk", "--max-concurrency", "1")
    full = subprocess.run([str(BIN / "audit"), *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert full.returncode == 2, full.stderr[-3000:]
    lines = full.stderr.strip().splitlines()
    warnings = [s for s in lines if s.startswith("warning: case ")]
    assert sorted(s.split()[2].rstrip(":") for s in warnings) == names, full.stderr[-3000:]
    assert all("No space left on device" in s for s in warnings), warnings
    assert lines[-1].startswith("error: cannot write") and "No space" in lines[-1], lines[-1]
    _visible_files_are_whole(output)
    assert not list(output.rglob(".*.tmp"))

    filler.unlink()
    again = subprocess.run([str(BIN / "audit"), *args], env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [(r[0], r[1]) for r in _rows(output, "full-disk")] == [(n, "ok") for n in names]
    assert len(_visible_files_are_whole(output)) == 3 * 3 + 1
