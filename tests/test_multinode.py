"""Two Ray nodes on loopback: cases spread over both, and losing one mid-run loses no case.

`ray.cluster_utils.Cluster` starts a head (dashboard on 127.0.0.1) at 127.0.0.1 and a second
node with its own CPUs and stand-in GPUs at 127.0.0.2, so the report's `node` column tells
them apart. The driver runs in this process through `audit.fleet.run_fleet`; every case sleeps
a moment inside its actor (the fleet's own test hook) so the second node can be removed while
cases are in flight.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("no_shared_ray")]

N_CASES = 8
HEAD_IP, WORKER_IP = "127.0.0.1", "127.0.0.2"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _children() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            if fields[0] != "Z":
                table.setdefault(int(fields[1]), []).append(int(entry))
    return table


def _tree(pids: set[int]) -> set[int]:
    """`pids` that still run and all their descendants."""
    children = _children()
    alive = {pid for kids in children.values() for pid in kids}
    found, frontier = pids & alive, pids & alive
    while frontier:
        frontier = {k for p in frontier for k in children.get(p, [])} - found
        found |= frontier
    return found


def _node_pids(node: Any) -> set[int]:
    return {info.process.pid for infos in node.all_processes.values() for info in infos
            if info.process is not None}


def _kill(pids: set[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _tree(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while _tree(pids) and time.monotonic() < deadline:
            time.sleep(0.1)


def _write_fleet(folder: Path) -> Path:
    import keras
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(folder / "tiny.keras")
    rng = np.random.default_rng(2)
    lines = []
    for i in range(N_CASES):
        x = rng.normal(size=(64, 3))
        pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2],
                                 "y": x @ [1.0, 2.0, 3.0]}), folder / f"c{i:02d}.parquet")
        lines.append(f"  - {{name: c{i:02d}, model: tiny.keras, data: c{i:02d}.parquet, "
                     "label: y}")
    manifest = folder / "multi.yaml"
    manifest.write_text(
        f"name: multi\noutput: {folder / 'reports'}\n"
        "resources: {num_cpus: 1, num_gpus: 0.5}\nprobes: [data, config]\n"
        "cases:\n" + "\n".join(lines) + "\n"
    )
    return manifest


def _case_rows(output: Path) -> list[dict[str, Any]]:
    import duckdb

    return duckdb.sql(
        f"select name, case_id, status, node, gpu_ids, attempts, finished_at "
        f"from read_parquet('{output}/cases/**/*.parquet', hive_partitioning=true, "
        f"union_by_name=true) order by name"
    ).df().to_dict("records")


def _remove_when_busy(cluster: Any, node: Any, output: Path, removed: dict[str, float]) -> None:
    """Remove `node` as soon as it has finished a case (its other actors are mid-case)."""
    cases = output / "cases"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if cases.exists() and any(cases.rglob("*.parquet")) and any(
                r["node"] == WORKER_IP for r in _case_rows(output)):
            removed["at"] = time.time()
            cluster.remove_node(node, allow_graceful=False)
            return
        time.sleep(0.2)


def test_cases_spread_over_two_nodes_and_survive_losing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from audit.fleet import FleetOptions, run_fleet
    from audit.fleet.testing import Injection
    from audit.manifest.schema import load_manifest

    for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    manifest = load_manifest(_write_fleet(tmp_path / "fleet"))
    output = tmp_path / "fleet" / "reports"
    dash, client, agent_h, agent_w = _free_ports(4)

    cluster = Cluster(initialize_head=True, head_node_args={
        "node_ip_address": HEAD_IP, "num_cpus": 1, "num_gpus": 1, "include_dashboard": True,
        "dashboard_host": "127.0.0.1", "dashboard_port": dash, "ray_client_server_port": client,
        "dashboard_agent_listen_port": agent_h})
    started = _node_pids(cluster.head_node)
    removed: dict[str, float] = {}
    try:
        worker = cluster.add_node(node_ip_address=WORKER_IP, num_cpus=1, num_gpus=2,
                                  dashboard_agent_listen_port=agent_w)
        started |= _node_pids(worker)
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()
        remover = threading.Thread(target=_remove_when_busy,
                                   args=(cluster, worker, output, removed), daemon=True)
        remover.start()
        nap = Injection(kind="sleep", seconds=1.5)
        result = run_fleet(manifest, FleetOptions(
            run_id="multi", progress=False, handle_signals=False),
            faults={f"c{i:02d}": nap for i in range(N_CASES)})
        remover.join(timeout=30)
    finally:
        ray.shutdown()
        cluster.shutdown()
        _kill(started)
    assert not _tree(started), "Ray processes outlived the test"

    assert "at" in removed, "the second node never finished a case"
    assert (result.n_ok, result.n_failed, result.n_missing) == (N_CASES, 0, 0)
    rows = _case_rows(output)
    assert sorted(r["name"] for r in rows) == [f"c{i:02d}" for i in range(N_CASES)]
    assert len({r["case_id"] for r in rows}) == N_CASES
    assert {r["status"] for r in rows} == {"ok"}
    nodes = {r["node"] for r in rows}
    assert nodes == {HEAD_IP, WORKER_IP}, nodes
    assert all(r["gpu_ids"] is not None and len(r["gpu_ids"]) == 1 for r in rows)
    late = [r for r in rows if r["finished_at"].timestamp() > removed["at"] + 1.0]
    assert late, "every case had finished before the node was removed"
    assert {r["node"] for r in late} == {HEAD_IP}
    retried = [r for r in rows if r["attempts"] >= 2]
    assert retried, "no case was in flight on the removed node"
    assert {r["node"] for r in retried} == {HEAD_IP}
    for table in ("cases", "findings", "metrics"):  # each case written once, nothing half
        files = sorted(p.name for p in (output / table / "run_id=multi").iterdir())
        assert files == sorted(f"{r['case_id']}.parquet" for r in rows), table
