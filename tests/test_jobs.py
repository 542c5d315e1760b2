"""`audit submit | status | logs | stop` against a real Ray head on loopback with token auth.

The head is started with `ray start` in its own process group and temp dir, and every process
of it (and of the jobs it ran) is stopped by pid at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit import jobs

BIN = Path(sys.executable).parent
TOKEN = "flatline-test-token-5b1e0c"
pytestmark = pytest.mark.usefixtures("no_shared_ray")  # its heads are Rays of their own


# ---------------------------------------------------------------- processes


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on loopback right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stat(pid: int | str) -> tuple[int, int, str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[2]), fields[0]  # ppid, process group, state


def process_tree(pgid: int) -> set[int]:
    """Live pids of a process group and all their descendants (Ray's workers and job drivers
    start their own groups, but stay children of the raylet)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = _stat(entry)
            except (OSError, ValueError):
                continue
    found = {pid for pid, (_, group, state) in table.items() if group == pgid and state != "Z"}
    while True:
        more = {pid for pid, (ppid, _, state) in table.items()
                if ppid in found and state != "Z"} - found
        if not more:
            return found
        found |= more


def kill_tree(pgid: int, grace_s: float = 3.0) -> set[int]:
    """SIGTERM, then SIGKILL, every process of the tree; returns any that survived."""
    pids = process_tree(pgid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if _alive(pid)}
            time.sleep(0.1)
        if not pids:
            break
    return pids


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[2] != "Z"
    except (OSError, ValueError):
        return False


@dataclass
class RayHead:
    address: str  # the dashboard: http://127.0.0.1:<port>
    env: dict[str, str]  # what a client on this machine runs with (the right token)
    pgid: int
    temp_dir: Path


def start_head(token: str, log: Path) -> RayHead:
    """`ray start --head` on loopback with token auth, free ports and its own temp dir."""
    gcs, dash, client, agent, agent_grpc, metrics, runtime_env = free_ports(7)
    temp_dir = Path(tempfile.mkdtemp(prefix="flr-", dir="/tmp"))  # short: socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the job finds `audit`
    )
    command = [
        str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1",
        "--dashboard-host", "127.0.0.1", "--port", str(gcs), "--dashboard-port", str(dash),
        "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
        "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
        "--runtime-env-agent-port", str(runtime_env), "--num-cpus", "2", "--num-gpus", "2",
        "--temp-dir", str(temp_dir), "--disable-usage-stats",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    client_env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}  # needs only the token
    head = RayHead(f"http://127.0.0.1:{dash}", client_env, proc.pid, temp_dir)
    try:
        if proc.wait(timeout=120) != 0:
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
    except BaseException:
        stop_head(head)
        raise
    return head


def stop_head(head: RayHead) -> None:
    survivors = kill_tree(head.pgid)
    subprocess.run(["rm", "-rf", str(head.temp_dir)], check=False)
    assert not survivors, f"Ray processes survived: {sorted(survivors)}"


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    log = tmp_path_factory.mktemp("ray") / "ray-start.log"
    started = start_head(TOKEN, log)
    try:
        yield started
    finally:
        stop_head(started)


# ---------------------------------------------------------------- fleets


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny compiled Keras model (3 inputs -> 1 output), saved as .keras."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


def write_fleet(folder: Path, model: Path, n_cases: int, output: Path | str,
                execution: str = "") -> Path:
    """A manifest folder: the model and one small Parquet per case (probes data+config)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "models").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "models" / "tiny.keras").write_bytes(model.read_bytes())
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n_cases):
        x = rng.normal(size=(64, 3))
        table = pa.table({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": x @ [1.0, 2.0, 3.0]})
        pq.write_table(table, folder / "data" / f"case{i}.parquet")
        cases.append(f"  - {{name: case{i}, model: models/tiny.keras, "
                     f"data: data/case{i}.parquet, label: y}}")
    manifest = folder / "fleet.yaml"
    manifest.write_text(
        f"name: e2e\noutput: {output}\nresources: {{num_cpus: 1}}\n"
        f"probes: [data, config]\n{execution}cases:\n" + "\n".join(cases) + "\n"
    )
    return manifest


def audit(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "audit"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def read_cases(output: Path, run_id: str) -> list[dict]:
    import duckdb

    pattern = f"{output}/cases/**/*.parquet"
    return duckdb.sql(
        f"select run_id, name, status, verdict, node from read_parquet('{pattern}', "
        f"hive_partitioning=true, union_by_name=true) where run_id = '{run_id}' order by name"
    ).df().to_dict("records")


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------- without a cluster


def test_find_token_follows_rays_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    token_file = tmp_path / "token"
    token_file.write_text("  from-path \n")
    assert jobs.find_token({}, home) == ("from-home", str(home / ".ray" / "auth_token"))
    assert jobs.find_token({"RAY_AUTH_TOKEN_PATH": str(token_file)}, home)[0] == "from-path"
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    assert jobs.find_token(env, home) == ("from-env", "RAY_AUTH_TOKEN")
    assert jobs.find_token({}, tmp_path / "nobody") == (None, None)
    with pytest.raises(jobs.JobsError, match="cannot read the token file"):
        jobs.find_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}, home)


def test_run_id_is_deterministic_and_follows_the_manifest(tmp_path: Path,
                                                          tiny_model: Path) -> None:
    manifest = write_fleet(tmp_path / "a", tiny_model, 2, tmp_path / "out")
    first = jobs.describe_manifest(manifest)
    assert jobs.derive_run_id(first) == jobs.derive_run_id(jobs.describe_manifest(manifest))
    assert jobs.derive_run_id(first).startswith("e2e-")
    assert first.n_cases == 2
    manifest.write_text(manifest.read_text().replace("name: e2e", "name: E2E Nightly!"))
    changed = jobs.derive_run_id(jobs.describe_manifest(manifest))
    assert changed.startswith("e2e-nightly-") and changed != jobs.derive_run_id(first)
    assert jobs.submission_id(changed) == f"audit-{changed}"
    assert jobs.submission_id(f"audit-{changed}") == f"audit-{changed}"
    with pytest.raises(jobs.JobsError, match="safe slug"):
        jobs.check_run_id("../etc")


def test_entrypoint_is_audit_run_in_the_shipped_folder(tmp_path: Path,
                                                       tiny_model: Path) -> None:
    info = jobs.describe_manifest(write_fleet(tmp_path / "m", tiny_model, 1, tmp_path / "o"))
    line = jobs.entrypoint(info, jobs.SubmitOptions(run_id="r-1"))
    assert line == "audit run fleet.yaml --run-id r-1"
    meta = jobs.job_metadata(info, "r-1")
    assert meta["flatline_run_id"] == "r-1" and meta["flatline_manifest_digest"] == info.digest


def test_submit_refuses_big_folders_and_relative_outputs(tmp_path: Path,
                                                         tiny_model: Path) -> None:
    info = jobs.describe_manifest(write_fleet(tmp_path / "big", tiny_model, 1, tmp_path / "o"))
    (info.folder / "data" / "blob.bin").write_bytes(b"\0" * (3 * 2**20))
    with pytest.raises(jobs.JobsError, match=r"3\.\d MiB is too large .* shared storage"):
        jobs.check_submittable(info, max_bytes=2 * 2**20)
    assert jobs.check_submittable(info, max_bytes=8 * 2**20) > 3 * 2**20
    relative = jobs.describe_manifest(write_fleet(tmp_path / "rel", tiny_model, 1, "reports"))
    with pytest.raises(jobs.JobsError, match=r"relative.*bucket"):
        jobs.check_submittable(relative, max_bytes=8 * 2**20)


def test_no_cluster_is_one_line_and_exit_2(tmp_path: Path, tiny_model: Path) -> None:
    (port,) = free_ports(1)
    manifest = write_fleet(tmp_path / "m", tiny_model, 1, tmp_path / "o")
    env = {**os.environ, "RAY_AUTH_TOKEN": TOKEN}
    result = audit("submit", str(manifest), "--address", f"http://127.0.0.1:{port}", "--wait",
                   "1", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no Ray cluster answers at")
    assert " tries in " in result.stderr  # it retried (a head may be starting) before giving up
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_manifest_is_one_line_and_exit_2_before_any_cluster(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("name: bad\noutput: /tmp/x\ncases:\n  - {model: m.keras, dat: d.csv}\n")
    result = audit("submit", str(manifest), "--address", "http://127.0.0.1:9", env=dict(
        os.environ))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "cases[0]" in result.stderr, result.stderr
    assert "Ray cluster" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_does_not_import_tensorflow() -> None:
    code = ("import sys, typer; from audit.cli import jobs as jobs_cli; "
            "app = typer.Typer(); "
            "jobs_cli.register(app); assert 'tensorflow' not in sys.modules; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- transient errors


# What Ray 2.60's JobSubmissionClient raises (ray/dashboard/modules/dashboard_sdk.py and the job
# head's "no agent yet" answer), and requests' errors under it.
NO_AGENT = RuntimeError("Request failed with status code 500: No available agent to submit job, "
                        "please try again later..")
UNAVAILABLE = RuntimeError("Request failed with status code 503: Service Unavailable.")
REFUSED = ConnectionError("Failed to connect to Ray at address: http://127.0.0.1:8265.")
NO_JOB = RuntimeError("Request failed with status code 404: Job audit-x does not exist..")
BAD_REQUEST = RuntimeError("Request failed with status code 400: invalid runtime_env.")


class Flaky:
    """Failure injection: the first `n` calls of each method raise `error`, later ones go to
    `real` (a real client, or None: then they return the method's name)."""

    def __init__(self, error: Exception, n: int, real: object = None) -> None:
        self.error, self.left, self.real, self.calls = error, n, real, 0

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            self.calls += 1
            if self.left:
                self.left -= 1
                raise self.error
            return getattr(self.real, name)(*args, **kwargs) if self.real else name
        return call


def test_transient_errors_are_recognized() -> None:
    import requests
    from ray.exceptions import AuthenticationError

    transient = [NO_AGENT, UNAVAILABLE, REFUSED,
                 requests.exceptions.ConnectionError("[Errno 111] Connection refused"),
                 requests.exceptions.HTTPError("502 Server Error: Bad Gateway for url: x")]
    for exc in transient:
        assert jobs.is_transient(exc), exc
    for exc in (NO_JOB, BAD_REQUEST, AuthenticationError("403 Forbidden"), ValueError("x")):
        assert not jobs.is_transient(exc), exc


def test_transient_errors_are_retried_with_backoff_then_fail_in_one_line() -> None:
    sleeps: list[float] = []
    backoff = jobs.Backoff(wait_s=30, first_s=0.5, max_s=4)
    flaky = Flaky(NO_AGENT, 5)
    client = jobs.RetryingClient(flaky, backoff, sleeps.append)
    assert client.submit_job(entrypoint="x") == "submit_job"
    assert flaky.calls == 6 and sleeps == [0.5, 1, 2, 4, 4]

    never = jobs.RetryingClient(Flaky(UNAVAILABLE, 10**6), jobs.Backoff(wait_s=0.05,
                                first_s=0.01), lambda s: time.sleep(s))
    with pytest.raises(jobs.JobsError) as caught:
        jobs.get_run(never, "r-1")
    message = str(caught.value)
    assert message.startswith("look up audit-r-1: the cluster still failed after ")
    assert "status code 503" in message and "--wait" in message and "\n" not in message

    for permanent in (NO_JOB, BAD_REQUEST):  # never retried
        flaky, sleeps = Flaky(permanent, 1), []
        with pytest.raises(jobs.JobsError):
            jobs.get_logs(jobs.RetryingClient(flaky, backoff, sleeps.append), "x")
        assert (flaky.calls, sleeps) == (1, [])


# ---------------------------------------------------------------- on a real head


@pytest.mark.ray
def test_submit_survives_a_head_that_cannot_take_jobs_yet(head: RayHead, tmp_path: Path,
                                                          tiny_model: Path) -> None:
    """Failure injection in front of the real client: the first three requests of each kind
    answer what a fresh head answers (500 "try again later"); submit goes through and runs."""
    output = tmp_path / "reports"
    manifest = write_fleet(tmp_path / "fleet", tiny_model, 1, output)
    real = jobs.connect(jobs.ClusterConfig(head.address, TOKEN))
    flaky = Flaky(NO_AGENT, 3, real)
    client = jobs.RetryingClient(flaky, jobs.Backoff(wait_s=20, first_s=0.1), time.sleep)
    info = jobs.describe_manifest(manifest)
    result = jobs.submit(client, info, jobs.SubmitOptions(run_id="fresh-head"))
    assert (result.created, result.state, flaky.left) == (True, "PENDING", 0)
    run = wait_for(lambda: (r := jobs.get_run(real, "fresh-head")).state in
                   jobs.TERMINAL_STATES and r, 240, "the run to end")
    assert run.state == "SUCCEEDED", real.get_job_logs("audit-fresh-head")[-2000:]
    assert [r["status"] for r in read_cases(output, "fresh-head")] == ["ok"]


@pytest.mark.ray
def test_an_entrypoint_that_cannot_start_says_why_in_one_line(head: RayHead,
                                                              tmp_path: Path) -> None:
    """A head whose PATH lacks `audit`: the job fails before the driver writes anything, and
    status and logs name the shell's error."""
    client = jobs.connect(jobs.ClusterConfig(head.address, TOKEN))
    client.submit_job(entrypoint="audit run fleet.yaml --run-id no-audit",
                      submission_id="audit-no-audit",
                      runtime_env={"env_vars": {"PATH": "/usr/bin:/bin"}},
                      metadata={"flatline_run_id": "no-audit",
                                "flatline_output": str(tmp_path / "out")})
    wait_for(lambda: jobs.get_run(client, "no-audit").state in jobs.TERMINAL_STATES, 120,
             "the job to fail")
    status = audit("status", "no-audit", "--address", head.address, env=head.env)
    assert status.returncode == 0, status.stderr
    (failed,) = [line for line in status.stdout.splitlines() if line.startswith("failed")]
    assert "the driver never started: " in failed and "audit: not found" in failed, failed
    assert "(exit code 127)" in failed
    logs = audit("logs", "no-audit", "--address", head.address, env=head.env)
    assert logs.returncode == 0 and "audit: not found" in logs.stdout
    (why,) = logs.stderr.strip().splitlines()
    assert why.startswith("run no-audit FAILED before its driver wrote anything: ") and \
        "audit: not found" in why and "cluster/README.md" in why, why


@pytest.mark.ray
def test_wrong_token_is_refused_in_one_line_and_nothing_runs(
    head: RayHead, tmp_path: Path, tiny_model: Path
) -> None:
    manifest = write_fleet(tmp_path / "m", tiny_model, 1, tmp_path / "out")
    env = {**head.env, "RAY_AUTH_TOKEN": "not-the-token"}
    result = audit("submit", str(manifest), "--address", head.address, "--run-id", "refused",
                   env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {head.address} refused the token from RAY_AUTH_TOKEN")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    no_token = {k: v for k, v in head.env.items() if k != "RAY_AUTH_TOKEN"}
    no_token["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    result = audit("status", "--address", head.address, env=no_token)
    assert result.returncode == 2 and "requires a token and none was found" in result.stderr
    client = jobs.connect(jobs.ClusterConfig(head.address, TOKEN))
    assert all(r.run_id != "refused" for r in jobs.list_runs(client))
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_submit_follow_and_read_the_report(head: RayHead, tmp_path: Path,
                                           tiny_model: Path) -> None:
    output = tmp_path / "reports"
    manifest = write_fleet(tmp_path / "fleet", tiny_model, 3, output)
    run_id = jobs.derive_run_id(jobs.describe_manifest(manifest))

    first = audit("submit", str(manifest), "--address", head.address, env=head.env)
    assert first.returncode == 0, first.stderr
    assert f"submitted run {run_id} as job audit-{run_id}" in first.stdout
    assert "INFO" not in first.stderr, first.stderr  # Ray's upload chatter is silenced
    client = jobs.connect(jobs.ClusterConfig(head.address, TOKEN))
    meta = client.get_job_info(f"audit-{run_id}").metadata
    assert meta["flatline_run_id"] == run_id
    assert meta["flatline_manifest_digest"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    again = audit("submit", str(manifest), "--address", head.address, env=head.env)
    assert again.returncode == 0 and "already submitted" in again.stdout, again.stderr

    follow = audit("logs", run_id, "--follow", "--address", head.address, env=head.env,
                   timeout=300)
    assert follow.returncode == 0, follow.stdout[-3000:] + follow.stderr[-3000:]
    assert f"audit run fleet.yaml --run-id {run_id}" in follow.stdout
    assert f"run {run_id} SUCCEEDED" in follow.stderr

    status = audit("status", run_id, "--address", head.address, env=head.env)
    assert status.returncode == 0, status.stderr
    assert "SUCCEEDED" in status.stdout
    assert "3 done, 0 failed of 3 (report: finished)" in status.stdout
    table = audit("status", "--address", head.address, env=head.env)
    assert run_id in table.stdout and "SUCCEEDED" in table.stdout

    rows = read_cases(output, run_id)
    assert [r["name"] for r in rows] == ["case0", "case1", "case2"]
    assert {r["status"] for r in rows} == {"ok"}
    logs = audit("logs", run_id, "--address", head.address, env=head.env)
    assert logs.stdout.count(f"--run-id {run_id}") == follow.stdout.count(f"--run-id {run_id}")


@pytest.mark.ray
def test_follow_reconnects_without_repeating_lines(head: RayHead) -> None:
    """Failure injection: the first two log streams drop after one chunk each."""
    client = jobs.connect(jobs.ClusterConfig(head.address, TOKEN))
    script = "import time\nfor i in range(12):\n    print(f'line {i}', flush=True)\n" \
             "    time.sleep(0.25)\n"
    client.submit_job(entrypoint=f"python -c {shlex.quote(script)}",
                      submission_id="audit-reconnect", metadata={"flatline_run_id": "reconnect"})
    real_tail = client.tail_job_logs
    drops = {"left": 2}

    async def flaky_tail(sid: str) -> AsyncIterator[str]:
        async for chunk in real_tail(sid):
            yield chunk
            if drops["left"]:
                drops["left"] -= 1
                raise RuntimeError("WebSocket connection closed unexpectedly")

    client.tail_job_logs = flaky_tail  # type: ignore[method-assign]
    chunks: list[str] = []
    run = jobs.follow_logs(client, "reconnect", chunks.append, retry_s=0.2)
    assert drops["left"] == 0, "the stream was never dropped"
    assert run.state == "SUCCEEDED"
    text = "".join(chunks)
    assert text == client.get_job_logs("audit-reconnect")
    assert [line for line in text.splitlines() if line.startswith("line ")] == [
        f"line {i}" for i in range(12)]


@pytest.mark.ray
def test_driver_resources_reach_ray(head: RayHead, tmp_path: Path, tiny_model: Path) -> None:
    """--num-gpus 3 on a head with 2 GPUs: Ray cannot place the driver, so nothing runs."""
    manifest = write_fleet(tmp_path / "fleet", tiny_model, 1, tmp_path / "out")
    submitted = audit("submit", str(manifest), "--address", head.address, "--run-id",
                      "too-big", "--num-gpus", "3", "--num-cpus", "1", env=head.env)
    assert submitted.returncode == 0, submitted.stderr
    time.sleep(3)
    client = jobs.connect(jobs.ClusterConfig(head.address, TOKEN))
    assert jobs.get_run(client, "too-big").state == "PENDING"
    stopped = audit("stop", "too-big", "--address", head.address, env=head.env)
    assert stopped.returncode == 1 and "still PENDING: Ray has not placed its driver" in \
        stopped.stdout, stopped
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_stop_keeps_finished_cases_and_marks_the_run_stopped(
    head: RayHead, tmp_path: Path, tiny_model: Path
) -> None:
    output = tmp_path / "reports"
    slow = "execution: {max_concurrency: 1, cases_per_actor: 1}\n"  # a fresh actor per case
    manifest = write_fleet(tmp_path / "fleet", tiny_model, 8, output, execution=slow)
    submitted = audit("submit", str(manifest), "--address", head.address, "--run-id",
                      "to-stop", env=head.env)
    assert submitted.returncode == 0, submitted.stderr
    cases = output / "cases" / "run_id=to-stop"
    try:
        wait_for(lambda: cases.exists() and any(cases.glob("*.parquet")), 240, "a finished case")
    except AssertionError as exc:
        status = audit("status", "--address", head.address, env=head.env).stdout
        logs = audit("logs", "to-stop", "--address", head.address, env=head.env).stdout
        raise AssertionError(f"{exc}\n{status}\n{logs[-3000:]}") from None

    stopped = audit("stop", "to-stop", "--address", head.address, env=head.env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert "run to-stop is STOPPED" in stopped.stdout

    import pyarrow.parquet as pq

    run_row = pq.read_table(output / "runs" / "run_id=to-stop" / "run.parquet").to_pylist()[0]
    assert run_row["status"] == "stopped"
    rows = read_cases(output, "to-stop")
    assert 1 <= len(rows) < 8, "stopped too late to tell" if len(rows) == 8 else rows
    assert all(r["status"] == "ok" for r in rows)
    assert run_row["n_ok"] == len(rows) and run_row["n_missing"] == 8 - len(rows)
    status = audit("status", "to-stop", "--address", head.address, env=head.env)
    assert "STOPPED" in status.stdout and "(report: stopped)" in status.stdout
