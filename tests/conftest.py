"""Shared fixtures. Sections are owned by the module named in their header; append, don't edit."""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep every Ray on 127.0.0.1
# Ray starts its workers at nice 15; beside the zoo's processes (nice 0) in the other pytest
# worker, an actor importing TensorFlow got ~5% of a core and a 12 s test took 146 s. The
# suite's Rays (and the `audit run` / `ray start` processes tests spawn) share fairly.
os.environ.setdefault("RAY_worker_niceness", "0")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# ---------------------------------------------------------------- parallel runs (issue 28)

#: The README's `pytest` runs the files in parallel (pytest-xdist, `-n auto` in pyproject),
#: each file whole in one worker. The files named here share one worker, one after another:
#: every test that starts a Ray (two on one machine would fight over ports, CPUs and the
#: object store) and every user of the session's zoo (built and audited once per worker that
#: asks for it). `pytest_collection_modifyitems` refuses a test that belongs here and is not.
SHARED_WORKER = {
    **dict.fromkeys(("test_chaos.py", "test_cli.py", "test_fleet.py",
                     "test_jobs.py", "test_multinode.py", "test_registry_mlflow.py",
                     "test_resume_unreadable.py", "test_reuse.py", "test_storage.py"), "ray"),
    **dict.fromkeys(("test_probe_keys.py", "test_probes_contract.py",
                     "test_retrain_isolation.py", "test_tfrecord_zoo.py",
                     "test_zoo_diagnosis.py", "test_zoo_stability.py"), "zoo"),
}
ZOO_FIXTURES = {"zoo_cases", "zoo_reports"}


def shared_worker(nodeid: str) -> str:
    """The worker group of a test: its file's entry in `SHARED_WORKER`, else its file."""
    file = nodeid.split("::", 1)[0]
    return SHARED_WORKER.get(Path(file).name, file)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that starts Ray or uses the zoo from a file outside its group."""
    wrong = [f"{item.nodeid} (should be in group {group!r})" for item in items
             for group, needed in (("ray", item.get_closest_marker("ray") is not None),
                                   ("zoo", bool(ZOO_FIXTURES & set(item.fixturenames))))
             if needed and shared_worker(item.nodeid) != group]
    if wrong:
        raise pytest.UsageError("tests/conftest.py SHARED_WORKER misses: " + "; ".join(wrong))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> object:
    """xdist's scope scheduling with our groups as scopes (most tests first, as xdist orders)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorkerScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared_worker(nodeid)

    return SharedWorkerScheduling(config, log)


# ---------------------------------------------------------------- engine: the zoo, built once


#: the zoo is built and audited in this many processes (one per core of the 2-core CI machine;
#: every scenario and audit seeds itself, so the results do not depend on where they ran)
ZOO_WORKERS = 2


@pytest.fixture(scope="session")
def zoo_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Every zoo scenario, trained and saved once per test session."""
    from audit.zoo import build_zoo

    folder: Path = tmp_path_factory.mktemp("zoo")
    return {case.name: case for case in build_zoo(folder, workers=ZOO_WORKERS)}


@pytest.fixture(scope="session")
def zoo_reports(zoo_cases: dict[str, object]) -> dict[str, object]:
    """Every zoo scenario audited once with all probes and the default budget."""
    from audit.zoo import audit_zoo

    return audit_zoo(list(zoo_cases.values()), workers=ZOO_WORKERS)


# ---------------------------------------------------------------- fleet, reports, cli (issue 3)


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Keras regression model and its data, plus a corrupt model and a corrupt dataset:
    cheap cases for fleet tests (probes data and config take ~0.1 s each)."""
    from audit.zoo import write_tiny_case

    folder: Path = tmp_path_factory.mktemp("tiny")
    write_tiny_case(folder)
    (folder / "corrupt.keras").write_bytes(b"this is not a keras file")
    (folder / "corrupt.parquet").write_bytes(b"PAR1 not really parquet")
    return {"model": folder / "tiny.keras", "data": folder / "tiny.parquet",
            "bad_model": folder / "corrupt.keras", "bad_data": folder / "corrupt.parquet"}


#: the local Ray the modules share: 2 CPUs and 2 stand-in GPUs (fractional GPU shares are
#: scheduled on them). Starting one costs ~5 s and a few CPU-seconds of Ray's own processes, so
#: it stays up from module to module, until a module that starts a Ray of its own
#: (`no_shared_ray`) or the session ends.
SHARED_RAY = {"num_cpus": 2, "num_gpus": 2}


@pytest.fixture(scope="module")
def module_ray() -> str:
    """The shared local Ray (started here if it is not up); its GCS address (for driver
    subprocesses). Whatever a test starts on it (a fleet's actors) ends with the test."""
    import ray

    if not ray.is_initialized():
        # address="local": always a new instance, even when a `ray start` head runs here
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", **SHARED_RAY)
    return ray.get_runtime_context().gcs_address


@pytest.fixture(scope="module")
def no_shared_ray() -> None:
    """For a module that starts its own Ray (`ray start`, a `Cluster`, `audit run`'s
    embedded one): the shared Ray is shut down first, so two never run at once."""
    _shutdown_shared_ray()


def _shutdown_shared_ray() -> None:
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The shared Ray, if a module started it, stops with the session."""
    _shutdown_shared_ray()


# ---------------------------------------------------------------- object stores (issue 4, 13)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(folder: Path, bucket: str) -> Iterator[int]:
    """A moto S3 server on 127.0.0.1 (its own process group, stopped by pid, its log in
    `folder`) with `bucket` created; yields its port."""
    import socket
    import subprocess
    import sys
    import time

    import boto3

    port = free_port()
    log = (folder / "moto.log").open("w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                               "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.2)
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        yield port
    finally:
        stop_by_pid(server)
        log.close()


# ---------------------------------------------------------------- model registry (issue 19)


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend, local artifact root in `folder`,
    one worker, no job runners, no telemetry; its own process group, stopped by pid, its log
    in `folder`); yields its tracking URI."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (folder / "mlflow.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--default-artifact-root", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
            assert server.poll() is None and time.monotonic() < deadline, \
                f"mlflow server did not start: {(folder / 'mlflow.log').read_text()[-2000:]}"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_by_pid(server, grace_s=15)
        log.close()


def stop_by_pid(server: Any, grace_s: float = 10) -> None:
    """Stop a server a test started (in its own process group) by its pid: SIGTERM, then
    SIGKILL after `grace_s`."""
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


# ---------------------------------------------------------------- digest cache (issue 27)

# the persistent digest cache (audit.io.digests) of a test session lives in a folder of its
# own, never in the user's ~/.cache; tests of the cache point it elsewhere themselves
if "FLATLINE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["FLATLINE_CACHE_DIR"] = tempfile.mkdtemp(prefix="flatline-test-cache-")
