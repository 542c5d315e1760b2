"""The fleet on a real local Ray (2 CPUs, 2 stand-in GPUs), read back with DuckDB.

Failures are injected through `run_fleet(..., faults=...)` (the fleet's testing hook in
`audit.fleet.testing`, never a production option: a case, by name, exits its worker, raises in
it, or sleeps). Every test checks that no case is
lost or reported twice.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from audit.fleet import (
    ActorPool,
    FleetError,
    FleetOptions,
    RunResult,
    gpu_memory_limit_mb,
    pool_size,
    run_fleet,
)
from audit.fleet.testing import Injection
from audit.fleet.worker import WORKERS_FOLDER, clear_stale_folders
from audit.manifest.case import Resources
from audit.manifest.schema import Manifest, load_manifest

pytestmark = pytest.mark.ray


def _manifest(folder: Path, cases: list[dict[str, Any]], **top: Any) -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": folder.name, "output": "out", "resources": {"num_cpus": 1},
           "probes": ["data", "config"], "cases": cases, **top}
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return load_manifest(folder / "m.yaml")


def _good(files: dict[str, Path], name: str) -> dict[str, Any]:
    return {"name": name, "model": str(files["model"]), "data": str(files["data"])}


def _rows(output: Path | str, run_id: str, table: str = "cases") -> list[dict[str, Any]]:
    """A run's rows through the documented query."""
    sql = (f"select * from read_parquet('{output}/{table}/**/*.parquet', hive_partitioning=true,"
           f" union_by_name=true) where run_id = '{run_id}' order by name")
    con = duckdb.connect()
    cursor = con.execute(sql)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _assert_each_case_once(output: Path, run_id: str, names: list[str]) -> dict[str, Any]:
    rows = _rows(output, run_id)
    assert sorted(r["name"] for r in rows) == sorted(names)
    assert len({r["case_id"] for r in rows}) == len(names)
    for table in ("cases", "findings", "metrics"):
        files = sorted(p.name for p in (output / table / f"run_id={run_id}").iterdir())
        assert files == sorted(f"{r['case_id']}.parquet" for r in rows), table
    return {r["name"]: r for r in rows}


def _quiet(**over: Any) -> FleetOptions:
    return FleetOptions(progress=False, handle_signals=False, **over)


# ---------------------------------------------------------------- faults, in one run


FAULTY = {
    "good-a": None,
    "good-b": None,
    "exits-once": Injection(kind="exit", attempts=1),
    "exits-always": Injection(kind="exit"),
    "raises": Injection(kind="raise"),
    "too-slow": Injection(kind="sleep", seconds=120),
}


@pytest.fixture(scope="module")
def faulty(module_ray: str, tiny_files: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, dict[str, Any]]:
    """One run holding every kind of fault next to healthy cases, on four actors that each
    hold half a CPU and half a (stand-in) GPU."""
    folder = tmp_path_factory.mktemp("faulty")
    cases = [_good(tiny_files, name) for name in FAULTY]
    cases[-1]["time_limit_s"] = 4
    cases.append({"name": "bad-model", "model": str(tiny_files["bad_model"]),
                  "data": str(tiny_files["data"])})
    cases.append({"name": "bad-data", "model": str(tiny_files["model"]),
                  "data": str(tiny_files["bad_data"])})
    manifest = _manifest(folder, cases, execution={"max_attempts": 2},
                         resources={"num_cpus": 0.5, "num_gpus": 0.5})
    inject = {name: fault for name, fault in FAULTY.items() if fault}
    _seed_worker_folders(folder / "tmproot" / WORKERS_FOLDER)
    result = run_fleet(manifest, _quiet(run_id="faulty", temp_root=str(folder / "tmproot")),
                       faults=inject)
    rows = _assert_each_case_once(folder / "out", "faulty", [c["name"] for c in cases])
    return result, rows


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def _seed_worker_folders(parent: Path) -> None:
    """What earlier runs left: a crashed worker's folder of this host, a live process's folder
    and another host's folder (both must stay)."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40]
    for name in (f"{host}-pid{_dead_pid()}-crashed", f"{host}-pid{os.getpid()}-alive",
                 "otherhost-pid1-foreign"):
        (parent / name).mkdir(parents=True)
        (parent / name / "__autograph_generated_fileabc.py").write_text("x = 1\n")


def test_workers_leave_no_temp_folder_and_clear_crashed_ones(faulty: tuple) -> None:
    """Workers that were recycled, killed (exit, timeout) or ended with the run leave nothing
    under the temp root; a crashed worker's folder from before is gone; other hosts' and live
    processes' folders stay."""
    result, _ = faulty
    parent = Path(result.output).parent / "tmproot" / WORKERS_FOLDER
    left = sorted(p.name.split("-", 1)[-1] for p in parent.iterdir())
    assert left == sorted([f"pid{os.getpid()}-alive", "pid1-foreign"]), left
    stray = [p for p in parent.parent.rglob("*") if parent not in p.parents and p != parent]
    assert stray == [], stray


AUTOGRAPH = """
import os, sys
from audit.fleet.worker import make_temp_folder
folder = make_temp_folder(sys.argv[1])  # what a worker does before importing TensorFlow
import tensorflow as tf


@tf.function
def double_if_positive(x):
    if tf.reduce_sum(x) > 0:  # autograph converts this: a generated file is written
        return x * 2
    return x


double_if_positive(tf.constant([1.0]))
print(os.environ["TMPDIR"] == str(folder), *sorted(os.listdir(folder)), flush=True)
os._exit(9)  # killed: neither TensorFlow's nor the worker's clean-up runs
"""


def test_autograph_files_land_in_the_worker_folder(tmp_path: Path) -> None:
    """A process that set up its folder like a worker and then died without cleaning up: its
    autograph files are in its own folder (nothing in the temp root), and the next worker's
    sweep removes the folder."""
    script = tmp_path / "autograph_probe.py"  # autograph needs the source in a file
    script.write_text(AUTOGRAPH)
    root = tmp_path / "root"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(script), str(root)], capture_output=True,
                          text=True, timeout=240, env=env)
    assert done.returncode == 9, done.stderr[-2000:]
    same, *files = done.stdout.split()
    assert same == "True" and files and all(
        f.startswith("__autograph_generated_file") for f in files), done.stdout
    parent = root / WORKERS_FOLDER
    (folder,) = parent.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == files
    assert sorted(p.name for p in root.iterdir()) == [WORKERS_FOLDER]
    assert clear_stale_folders(parent) == [folder]
    assert list(parent.iterdir()) == []


def test_workers_say_which_ray_node_they_run_on(module_ray: str, tiny_files: dict,
                                               tmp_path: Path) -> None:
    """`node_id` (the Ray node id, unique where `node`, an IP, is not) comes from the worker;
    the report carries it once the schema has the column (audit/reports.py)."""
    import ray

    from audit.fleet.worker import CaseWorker, WorkerConfig

    manifest = _manifest(tmp_path, [_good(tiny_files, "where")])
    worker = ray.remote(CaseWorker).options(num_cpus=0.5).remote(WorkerConfig(
        output=str(tmp_path / "out"), run_id="where", resources=manifest.resources,
        temp_root=str(tmp_path / "tmp")))
    try:
        identity = ray.get(worker.setup.remote(), timeout=300)
        assert identity["node_id"] in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        status = ray.get(worker.run.remote(manifest.cases()[0], 1), timeout=300)
        assert status["status"] == "ok" and ray.get(worker.close.remote(), timeout=60)
    finally:
        ray.kill(worker)
    (row,) = _rows(tmp_path / "out", "where")
    assert row["node"] == identity["node"]
    if "node_id" in row:  # the cases schema's node_id column (added in audit/reports.py)
        assert row["node_id"] == identity["node_id"]


def test_healthy_cases_finish_next_to_faulty_ones(faulty: tuple[RunResult, dict]) -> None:
    result, rows = faulty
    assert rows["good-a"]["status"] == rows["good-b"]["status"] == "ok"
    assert rows["good-a"]["verdict"] in ("healthy", "impaired", "flat")
    assert (result.n_cases, result.n_ok, result.n_error, result.n_timeout) == (8, 3, 4, 1)
    assert result.exit_code == 1


def test_a_worker_that_dies_is_replaced_and_the_case_retried(faulty: tuple) -> None:
    _, rows = faulty
    row = rows["exits-once"]
    assert (row["status"], row["attempts"], row["error"]) == ("ok", 2, None)


def test_a_case_that_always_crashes_ends_as_error_with_a_reason(faulty: tuple) -> None:
    _, rows = faulty
    row = rows["exits-always"]
    if "node_id" in row:  # written by the driver, from the worker's identity
        assert row["node_id"] == rows["good-a"]["node_id"] is not None
    assert (row["status"], row["verdict"], row["attempts"]) == ("error", "error", 2)
    assert "worker" in row["error"] and "died" in row["error"] and "\n" not in row["error"]


def test_a_case_whose_audit_raises_is_an_error_at_once_not_retried(faulty: tuple) -> None:
    """An exception the audit itself raised would be raised again: one attempt, no restart
    of the worker (each costs a TensorFlow start-up), the exception in one line."""
    _, rows = faulty
    row = rows["raises"]
    assert (row["status"], row["verdict"], row["attempts"]) == ("error", "error", 1)
    assert "RuntimeError: injected failure" in row["error"] and "\n" not in row["error"]


def test_a_case_over_its_time_limit_ends_as_timeout(faulty: tuple) -> None:
    _, rows = faulty
    row = rows["too-slow"]
    assert row["status"] == "timeout" and "time limit of 4s" in row["error"]
    assert row["duration_s"] >= 3.5  # killed at its limit, not before (no upper bound: load)


def test_bad_model_and_data_files_end_as_error_with_one_line(faulty: tuple) -> None:
    _, rows = faulty
    for name, fragment in (("bad-model", "corrupt.keras"), ("bad-data", "corrupt.parquet")):
        row = rows[name]
        assert (row["status"], row["attempts"]) == ("error", 1), name
        assert fragment in row["error"] and "\n" not in row["error"], row["error"]


def test_the_run_row_is_written_with_counts_and_settings(faulty: tuple) -> None:
    result, rows = faulty
    output = Path(result.output)
    (run,) = _rows(output, "faulty", "runs")
    assert (run["run_id"], run["status"], run["n_cases"], run["n_ok"]) == ("faulty", "finished",
                                                                           8, 3)
    assert (run["n_error"], run["n_timeout"], run["package_version"]) == (4, 1, "0.1.0")
    assert '"max_attempts": 2' in run["settings"] and '"inject"' not in run["settings"]
    assert '"faults"' not in run["settings"]
    last_case = max(r["finished_at"] for r in rows.values())
    assert run["finished_at"] >= last_case


# ---------------------------------------------------------------- resources


def test_fractional_gpus_pack_as_declared_and_gpu_ids_are_recorded(faulty: tuple) -> None:
    result, rows = faulty
    assert result.concurrency == 4  # 2 GPUs / 0.5, 2 CPUs / 0.5
    spans: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for row in rows.values():
        if row["worker"] is None:
            continue  # its worker never started a case
        assert len(row["gpu_ids"]) == 1 and row["gpu_ids"][0] in ("0", "1"), row
        spans[row["gpu_ids"][0]].append((row["started_at"].timestamp(),
                                         row["finished_at"].timestamp()))
    assert sum(len(v) for v in spans.values()) >= 5
    for gpu, intervals in spans.items():  # never more than two halves on one GPU at once
        most = max(sum(1 for s, f in intervals if s <= t < f) for t, _ in intervals)
        assert most <= 2, (gpu, intervals)


def test_actor_pool_recycles_actors_and_knows_nothing_of_cases(module_ray: str) -> None:
    """The scheduler alone, with a trivial actor: items are opaque, each actor serves at most
    `max_uses` of them, and at most `size` run at once."""
    import ray

    @ray.remote(num_cpus=0.25)
    class Echo:
        def ready(self) -> dict[str, Any]:
            return {}

        def run(self, item: int, attempt: int) -> tuple[int, str, float, float]:
            started = time.time()
            time.sleep(0.05)
            return item, ray.get_runtime_context().get_actor_id(), started, time.time()

    pool = ActorPool(size=2, make_actor=Echo.remote, warm=lambda a: a.ready.remote(),
                     submit=lambda a, item, attempt: a.run.remote(item, attempt),
                     time_limit=lambda item: 30.0, max_attempts=1, max_uses=3, poll_s=0.1)
    outcomes = list(pool.run(iter(range(12))))
    assert sorted(o.status[0] for o in outcomes) == list(range(12))
    uses = collections.Counter(o.status[1] for o in outcomes)
    assert len(uses) >= 4 and max(uses.values()) <= 3, uses
    spans = [(o.status[2], o.status[3]) for o in outcomes]
    assert max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans) <= 2


def test_actor_pool_starts_actors_before_the_items_and_gives_back_spare_seats(
        module_ray: str) -> None:
    """`start` warms every seat before any item is known (the driver is still expanding the
    manifest); `trim` gives back the seats fewer items need, and the run uses the warm
    actors it kept, none started anew."""
    import ray

    @ray.remote(num_cpus=0.25)
    class Born:
        def ready(self) -> dict[str, Any]:
            return {}

        def run(self, item: int, attempt: int) -> tuple[int, str]:
            return item, ray.get_runtime_context().get_actor_id()

    made: list[Any] = []

    def make() -> Any:
        made.append(Born.remote())
        return made[-1]

    pool = ActorPool(size=3, make_actor=make, warm=lambda a: a.ready.remote(),
                     submit=lambda a, item, attempt: a.run.remote(item, attempt),
                     time_limit=lambda item: 30.0, max_attempts=1, max_uses=10, poll_s=0.1)
    pool.start()
    assert len(made) == 3 and len(pool.warming) == 3
    pool.trim(2)
    assert len(pool.slots) == 2
    outcomes = list(pool.run(iter(range(6))))
    assert sorted(o.status[0] for o in outcomes) == list(range(6))
    assert len(made) == 3  # no actor started after the items were known
    assert len({o.status[1] for o in outcomes}) <= 2


def test_pool_size_follows_resources_and_caps(module_ray: str, tiny_files: dict) -> None:
    manifest = _manifest_obj(tiny_files)
    assert pool_size(Resources(num_cpus=1, num_gpus=0.25), _quiet(), 100, manifest) == 2
    assert pool_size(Resources(num_cpus=0.5, num_gpus=0.5), _quiet(), 100, manifest) == 4
    assert pool_size(Resources(num_cpus=0.25), _quiet(max_concurrency=3), 100, manifest) == 3
    assert pool_size(Resources(num_cpus=0.25), _quiet(), 5, manifest) == 5
    with pytest.raises(FleetError, match=r"num_gpus=3 per case but the cluster has 2 GPUs"):
        pool_size(Resources(num_gpus=3), _quiet(), 1, manifest)


def _manifest_obj(files: dict[str, Path]) -> Manifest:
    from audit.manifest.schema import parse_manifest

    return parse_manifest({"name": "n", "cases": [_good(files, "x")]})


def test_loopback_only_holds_even_after_ray_was_imported() -> None:
    import ray._private.ray_constants as constants

    from audit.fleet import loopback_only

    loopback_only()
    assert constants.ENABLE_RAY_CLUSTER is False
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"


def test_progress_in_a_log_is_a_line_now_and_then_with_an_eta() -> None:
    import io

    from rich.console import Console

    from audit.fleet.progress import progress_lines

    out = io.StringIO()
    result = RunResult(run_id="r", output="o", n_cases=4)
    tick = progress_lines(Console(file=out, width=200), "fleet", result, every_s=3600)
    for status in ("ok", "ok", "error", "ok"):
        result.n_ok += status == "ok"
        result.n_error += status == "error"
        tick()
    assert out.getvalue().splitlines() == ["audit fleet: 4/4 cases, 1 failed, ETA 0s"]


def test_gpu_memory_share() -> None:
    assert gpu_memory_limit_mb(0.25, 16000) == 3800
    assert gpu_memory_limit_mb(1.0, 16000) is None and gpu_memory_limit_mb(0.5, None) is None


def test_resume_of_an_unknown_run_is_refused(module_ray: str, tiny_files: dict,
                                             tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [_good(tiny_files, "x")])
    with pytest.raises(FleetError, match="--resume nope: no such run"):
        run_fleet(manifest, _quiet(run_id="nope", resume=True))


def test_resume_with_retry_failed_reruns_only_the_cases_that_failed(
        module_ray: str, tiny_files: dict, tmp_path: Path) -> None:
    """A case that failed (here: its worker raised) gets another run; an ok case is kept."""
    manifest = _manifest(tmp_path, [_good(tiny_files, "fine"), _good(tiny_files, "flaky")],
                         execution={"max_attempts": 1})
    first = run_fleet(manifest, _quiet(run_id="flaky-night"),
                      faults={"flaky": Injection(kind="raise")})
    assert (first.n_ok, first.n_error) == (1, 1)
    before = {r["name"]: r for r in _rows(tmp_path / "out", "flaky-night")}
    assert before["flaky"]["status"] == "error"

    plain = run_fleet(manifest, _quiet(run_id="flaky-night", resume=True))
    assert (plain.n_resumed, plain.n_ok, plain.n_error) == (2, 1, 1)  # nothing re-run

    again = run_fleet(manifest, _quiet(run_id="flaky-night", resume=True, retry_failed=True))
    assert (again.n_resumed, again.n_ok, again.n_error, again.exit_code) == (1, 2, 0, 0)
    rows = _assert_each_case_once(tmp_path / "out", "flaky-night", ["fine", "flaky"])
    assert rows["flaky"]["status"] == "ok" and rows["flaky"]["error"] is None
    assert rows["fine"]["started_at"] == before["fine"]["started_at"]  # not run again


def test_retry_failed_needs_a_run_to_retry(tiny_files: dict, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [_good(tiny_files, "x")])
    with pytest.raises(FleetError, match="--retry-failed needs the run"):
        run_fleet(manifest, _quiet(retry_failed=True))


# ---------------------------------------------------------------- stop, kill, resume

DRIVER = """
import sys
from audit.fleet import FleetOptions, run_fleet
from audit.fleet.testing import Injection
from audit.manifest.schema import load_manifest
path, address, run_id, resume = sys.argv[1:5]
manifest = load_manifest(path)
nap = Injection(kind="sleep", seconds=1.5)
result = run_fleet(manifest, FleetOptions(
    address=address, run_id=run_id, resume=resume == "1", progress=False, max_concurrency=1),
    faults={case.name: nap for case in manifest.cases()})
sys.exit(result.exit_code)
"""


def _driver(manifest: Path, address: str, resume: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(manifest), address, "stopme",
                             "1" if resume else "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for_cases(folder: Path, more_than: int, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = len(list(folder.glob("*.parquet"))) if folder.exists() else 0
        if done > more_than:
            return done
        time.sleep(0.1)
    raise AssertionError(f"driver made no progress: {proc.poll()} {proc.stderr.read()[-2000:]}"
                         if proc.stderr and proc.poll() is not None else "driver made no progress")


def test_stopped_then_killed_driver_resumes_with_every_case_exactly_once(
    module_ray: str, tiny_files: dict[str, Path], tmp_path: Path
) -> None:
    names = [f"s{i}" for i in range(6)]
    manifest = _manifest(tmp_path, [_good(tiny_files, n) for n in names])
    cases_dir = tmp_path / "out" / "cases" / "run_id=stopme"
    run_file = tmp_path / "out" / "runs" / "run_id=stopme" / "run.parquet"

    first = _driver(Path(manifest.source), module_ray, resume=False)
    try:
        _wait_for_cases(cases_dir, 0, first)
        first.send_signal(signal.SIGTERM)  # what `ray job stop` sends
        assert first.wait(timeout=60) == 1
    finally:
        first.kill()
    stopped = len(list(cases_dir.glob("*.parquet")))
    assert 1 <= stopped < 6
    run = duckdb.connect().execute(f"select status, n_ok, n_missing from '{run_file}'").fetchone()
    assert run == ("stopped", stopped, 6 - stopped)

    second = _driver(Path(manifest.source), module_ray, resume=True)
    try:
        killed_at = _wait_for_cases(cases_dir, stopped, second)
        os.kill(second.pid, signal.SIGKILL)
        second.wait(timeout=30)
    finally:
        second.kill()
    assert killed_at > stopped

    result = run_fleet(manifest, _quiet(run_id="stopme", resume=True))
    assert result.n_resumed >= killed_at and result.exit_code == 0
    rows = _assert_each_case_once(tmp_path / "out", "stopme", names)
    assert {r["status"] for r in rows.values()} == {"ok"}
    status = duckdb.connect().execute(f"select status, n_ok from '{run_file}'").fetchone()
    assert status == ("finished", 6)


# ---------------------------------------------------------------- throughput and memory


def _cheap_fleet(folder: Path, files: dict[str, Path], n: int) -> Manifest:
    # reuse_days 0: a second run of the same fleet audits every case again instead of
    # reusing the first run's rows (issue 27), so both runs schedule all of them
    return _manifest(folder, [_good(files, f"c{i:03d}") for i in range(n)],
                     execution={"cases_per_actor": 1000, "reuse_days": 0})


def _throughput(output: Path, run_id: str) -> float:
    """Steady-state cases per minute: over the time every worker was running cases (from the
    last worker's first start to the first worker's last finish), so the actors' start-up
    (importing TensorFlow, a fixed cost per actor) is left out."""
    rows = _rows(output, run_id)
    by_worker: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        by_worker[row["worker"]].append(row)
    start = max(min(r["started_at"] for r in w) for w in by_worker.values()).timestamp()
    end = min(max(r["finished_at"] for r in w) for w in by_worker.values()).timestamp()
    inside = [r for r in rows if r["started_at"].timestamp() >= start
              and r["finished_at"].timestamp() <= end]
    return 60.0 * len(inside) / (end - start)


def _overlaps(output: Path, run_id: str) -> int:
    """How many pairs of cases ran at the same time (their start-finish intervals overlap)."""
    spans = sorted((r["started_at"].timestamp(), r["finished_at"].timestamp())
                   for r in _rows(output, run_id))
    return sum(1 for i, (_, end) in enumerate(spans) for start, _ in spans[i + 1 :]
               if start < end)


def test_two_slots_run_cases_side_by_side_and_one_slot_never_does(
    module_ray: str, tiny_files: dict[str, Path], tmp_path: Path
) -> None:
    """Scheduling, not speed (speed is measured in benchmarks/fleet_parallel.py): two slots
    keep two workers busy at once, one slot runs cases strictly one after another. In the
    two-slot run the first two cases wait for each other inside their workers (a rendezvous),
    so they run side by side whatever the machine's speed (a worker that starts first cannot
    take the whole fleet alone)."""
    manifest = _cheap_fleet(tmp_path, tiny_files, 24)
    meet = Injection(kind="rendezvous", folder=str(tmp_path / "meet"), count=2, seconds=120)
    one = run_fleet(manifest, _quiet(run_id="one-slot", max_concurrency=1))
    two = run_fleet(manifest, _quiet(run_id="two-slots", max_concurrency=2),
                    faults={"c000": meet, "c001": meet})
    assert (one.n_ok, one.concurrency, two.n_ok, two.concurrency) == (24, 1, 24, 2)
    out = tmp_path / "out"
    assert _overlaps(out, "one-slot") == 0
    rows = {r["name"]: r for r in _rows(out, "two-slots")}
    assert len({r["worker"] for r in rows.values()}) == 2
    assert rows["c000"]["worker"] != rows["c001"]["worker"]  # met: on two workers at once
    assert len(list((tmp_path / "meet").iterdir())) == 2
    rate_1, rate_2 = (_throughput(out, r) for r in ("one-slot", "two-slots"))
    print(f"\ncases/min (informational): 1 slot {rate_1:.0f}, 2 slots {rate_2:.0f}")


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_driver_memory_stays_flat_as_the_fleet_grows(
    module_ray: str, tiny_files: dict[str, Path], tmp_path: Path
) -> None:
    """300 cheap cases: the driver's Python heap and RSS after case 300 are those after 100
    (benchmarks/chaos.py runs 2,000)."""
    manifest = _cheap_fleet(tmp_path, tiny_files, 300)
    cases = manifest.cases()
    seen: dict[int, tuple[int, int]] = {}

    def measure(result: RunResult) -> None:
        done = result.n_ok + result.n_failed
        if done in (100, 300):
            seen[done] = (tracemalloc.get_traced_memory()[0], _rss())

    tracemalloc.start()
    try:
        result = run_fleet(manifest, _quiet(run_id="three-hundred"), cases=cases,
                           on_case=measure)
    finally:
        tracemalloc.stop()
    assert result.n_ok == 300
    _assert_each_case_once(tmp_path / "out", "three-hundred", [c.name for c in cases])
    heap = seen[300][0] - seen[100][0]
    rss = seen[300][1] - seen[100][1]
    print(f"\ndriver growth from case 100 to case 300: heap {heap / 1024:.0f} KiB, "
          f"RSS {rss / 2**20:.1f} MiB")
    assert heap < 200 * 1024  # holding the results would take megabytes
    assert rss < 32 * 2**20


# ---------------------------------------------------------------- TFRecord data (issue 29)


def test_a_fleet_on_tfrecord_shards_goes_on_past_each_bad_input(
        module_ray: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A `fleet:` entry whose data and schema come from `{stem}` templates, next to a case for
    every kind of bad TFRecord input: each bad case ends `error` with its one line (the file,
    the record), the others audit, and the report keeps each case's glob as written."""
    import shutil

    from test_tfrecord import BAD_KINDS, _examples, _rows, _schema, bad_inputs, tiny_keras

    model = tiny_keras(tmp_path_factory.mktemp("model"))
    bad = bad_inputs(tmp_path_factory.mktemp("bad"))
    for stem in ("churn", "fraud"):  # models/<stem>.keras, data/<stem>/ shards and schema
        (tmp_path / "models").mkdir(exist_ok=True)
        shutil.copy(model, tmp_path / "models" / f"{stem}.keras")
        (tmp_path / "data" / stem).mkdir(parents=True)
        for i in range(2):
            _examples(tmp_path / "data" / stem / f"eval-{i:05d}-of-00002.tfrecord.gz",
                      _rows(40, seed=i), "GZIP")
        _schema(tmp_path / "data" / stem / "schema.pbtxt", [(c, "FLOAT", {}) for c in "yabc"])
    cases = [{"name": kind.replace(" ", "-"), "model": model, "label": "y",
              **{"schema" if k == "data_schema" else k: v for k, v in bad[kind][0].items()}}
             for kind in BAD_KINDS]
    manifest = _manifest(tmp_path, cases, fleet=[{
        "models": "models/*.keras", "data": "data/{stem}/eval-*.tfrecord.gz",
        "schema": "data/{stem}/schema.pbtxt", "label": "y"}])
    result = run_fleet(manifest, _quiet(run_id="tfr"))
    rows = _assert_each_case_once(tmp_path / "out", "tfr",
                                  ["churn", "fraud", *(c["name"] for c in cases)])
    assert (result.n_cases, result.n_ok, result.n_error) == (2 + len(BAD_KINDS), 2,
                                                             len(BAD_KINDS))
    for stem in ("churn", "fraud"):
        assert rows[stem]["status"] == "ok", rows[stem]["error"]
        assert rows[stem]["data"] == str(tmp_path / "data" / stem / "eval-*.tfrecord.gz")
    for kind in BAD_KINDS:
        row = rows[kind.replace(" ", "-")]
        assert (row["status"], row["verdict"], row["error"]) == ("error", "error", bad[kind][1])
