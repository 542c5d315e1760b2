"""`fleet_parallel` and `fleet_overhead`: the fleet on a local Ray with 1 and 2 worker slots,
and a plain loop of audits against the fleet with one slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import Comparison, Mismatch, Throughput, log, median, parallel_capacity, timed

FLEET_PROBES = ("data", "config", "sensitivity", "activations", "gradients")


def fleet_manifest(cases: list[Any], retrain_names: set[str], folder: Path,
                   cpus: float = 1) -> Any:
    """A manifest of the zoo cases: the cheap probes for all, retrain too for some; each
    case asks for `cpus` CPUs."""
    from audit.manifest.schema import parse_manifest

    return parse_manifest(fleet_doc(cases, retrain_names, folder, cpus),
                          where="benchmark fleet", base_dir=str(folder))


def fleet_doc(cases: list[Any], retrain_names: set[str], folder: Path,
              cpus: float = 1) -> dict[str, Any]:
    """The manifest document of `fleet_manifest` (every path in it absolute)."""
    entries = []
    for case in cases:
        entry: dict[str, Any] = case.spec_fields()
        if case.name in retrain_names:
            entry["probes"] = [*FLEET_PROBES, "retrain"]
        entries.append(entry)
    return {"name": "bench-fleet", "output": str(folder / "unused"),
            "resources": {"num_cpus": cpus}, "probes": list(FLEET_PROBES), "cases": entries}


def measure_fleet(cases: list[Any], retrain_names: set[str], folder: Path,
                  wanted: set[str]) -> list[Comparison]:
    """The plain loop, then the fleet: 1 slot with the loop's CPUs, and 1, 2, 2, 1 slots of
    one CPU each, back to back on one local Ray (2 CPUs).

    Every side starts from the manifest, as `audit run` does: expanding it (hashing the files
    for the case ids) is in each time. `fleet_overhead` gives the fleet's one slot the CPUs the
    loop uses (both of the machine's), so that it measures what Ray costs, not a thread pool
    half the size; the JSON keeps the loop against a 1-CPU slot too. The loop runs as a
    user's script would, in a fresh process: like the fleet's actor, it imports TensorFlow
    before its first case (until 2026-12-08 it ran in this process, TensorFlow warm, and the
    fleet's side alone paid the import: the JSON keeps that ratio as `ratio_vs_warm_loop`)."""
    import ray

    from audit.fleet import FleetOptions, run_fleet

    manifest = fleet_manifest(cases, retrain_names, folder)
    whole = fleet_manifest(cases, retrain_names, folder, cpus=2)
    capacity = parallel_capacity()
    log(f"fleet: two busy processes get {capacity['speedup']:.2f}x the work of one done here "
        "now")
    used = {"cases": [c.name for c in cases], "probes": list(FLEET_PROBES),
            "retrain_on": sorted(retrain_names), "resources": {"num_cpus": 1},
            "ray": "local, ray.init(address='local', num_cpus=2)",
            "budget": manifest.budget.model_dump()}
    times: dict[str, float] = {}
    detail: dict[str, Any] = {}
    if "fleet_overhead" in wanted:
        log(f"fleet: plain loop over {len(cases)} cases in a fresh process ...")
        doc = fleet_doc(cases, retrain_names, folder)
        times["loop"], spent = timed(lambda: fresh_loop(doc, folder / "loop"))
        log(f"fleet: plain loop over {len(cases)} cases in this process ...")
        times["warm_loop"], warm = timed(lambda: plain_loop(manifest))
        detail["loop"] = {"wall_s": times["loop"], "cases_s": sum(spent.values()),
                          "case_s": spent, "process": "fresh"}
        detail["warm_loop"] = {"wall_s": times["warm_loop"], "cases_s": sum(warm.values()),
                               "case_s": warm, "process": "this one (TensorFlow imported)"}
    # address="local": always a fresh Ray of our own, never another one running on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    # The 1-slot run with both CPUs right after the loop (fleet_overhead compares those two),
    # then 1, 2, 2, 1 slots of one CPU: a burst of someone else's load then hits both
    # settings alike, and the best run of each counts.
    order: list[tuple[str, int, Any]] = []
    if "fleet_overhead" in wanted:
        order.append(("1slot_2cpu", 1, whole))
    if "fleet_parallel" in wanted:
        order += [("1slot_a", 1, manifest), ("2slot_a", 2, manifest), ("2slot_b", 2, manifest),
                  ("1slot_b", 1, manifest)]
    runs: dict[str, float] = {}
    try:
        for label, slots, chosen in order:
            capacity_now = parallel_capacity()
            log(f"fleet: {len(cases)} cases with {slots} slot(s) ({label}) ...")
            output = str(folder / f"out-{label}")
            options = FleetOptions(output=output, max_concurrency=slots, progress=False,
                                   handle_signals=False)
            elapsed, result = timed(lambda o=options, m=chosen: run_fleet(m, o))
            if result.n_ok != len(cases) or result.concurrency != slots:
                raise Mismatch(f"fleet with {slots} slot(s): {result.n_ok}/{len(cases)} ok, "
                               f"concurrency {result.concurrency}")
            runs[label] = elapsed
            detail[label] = {"wall_s": elapsed, **fleet_case_times(output),
                             "cpu_parallel_capacity_before": capacity_now["speedup"]}
    finally:
        ray.shutdown()
    used["runs"] = detail
    used["run_order"] = [*(["loop"] if "loop" in detail else []), *(k for k, _, _ in order)]
    used["cpu_parallel_capacity_start"] = capacity
    used["cpu_parallel_capacity_after"] = parallel_capacity()
    out = []
    if "fleet_parallel" in wanted:
        one, two = min(runs["1slot_a"], runs["1slot_b"]), min(runs["2slot_a"], runs["2slot_b"])
        out.append(Comparison("fleet_parallel", two, one, one / two, [], {
            "fleet": used, "timing": "best of two runs each, in the order 1, 2, 2, 1 slot(s) "
            "of one CPU each"}))
    if "fleet_overhead" in wanted:
        notes = {"fleet": used, "timing": "the loop (a fresh process, from its start to its "
                 "exit), the loop in this process, then the 1-slot run with the loop's CPUs",
                 "note": "both sides start from nothing: the loop's process, like the fleet's "
                 "one actor, imports TensorFlow and warms up before its first case (the fleet "
                 "also writes every report; the loop keeps them in memory). The actor asks for "
                 "both CPUs, so its TF uses 2 threads as the loop's does",
                 "ratio_vs_warm_loop": times["warm_loop"] / runs["1slot_2cpu"]}
        if "1slot_a" in runs:
            notes["ratio_loop_vs_1cpu_slot"] = times["loop"] / runs["1slot_a"]
        out.append(Comparison("fleet_overhead", runs["1slot_2cpu"], times["loop"],
                              times["loop"] / runs["1slot_2cpu"], [], notes))
    return out


LOOP = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fleet_runs import plain_loop
from audit.manifest.schema import load_manifest
print(json.dumps(plain_loop(load_manifest(sys.argv[2]))))
"""


def fresh_loop(doc: dict[str, Any], folder: Path) -> dict[str, float]:
    """`plain_loop` as a user's script runs it: a fresh Python process (it imports
    TensorFlow, as a fleet's actor does); each case's audit seconds."""
    import json
    import subprocess
    import sys

    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "loop.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run([sys.executable, "-c", LOOP, str(Path(__file__).parent), str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise Mismatch(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                       else f"fleet loop exited {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plain_loop(manifest: Any) -> dict[str, float]:
    """A plain loop of `audit_case` over the manifest's cases; each case's audit seconds."""
    from audit.engine import audit_case

    spent = {}
    for spec in manifest.cases():
        report = audit_case(spec)
        if report.status != "ok":
            raise Mismatch(f"fleet loop: {spec.name} ended as {report.status}: {report.error}")
        spent[spec.name] = report.duration_s
    return spent


def measure_mixed(cases: list[Any], folder: Path) -> Throughput:
    """The mixed fleet on 2 slots, every probe on every case (as `audit run` does by default:
    the retrain probe skips healthy models itself, and exports): cases per hour."""
    import ray

    from audit.fleet import FleetOptions, run_fleet

    manifest = fleet_manifest(cases, {c.name for c in cases}, folder)
    n_cases = len(cases)
    healthy = {c.name for c in cases if c.expected_fault is None}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    try:
        capacity = parallel_capacity()
        log(f"fleet_mixed: {n_cases} cases ({len(healthy)} healthy) on 2 slots ...")
        output = str(folder / "out-mixed")
        options = FleetOptions(output=output, max_concurrency=2, progress=False,
                               handle_signals=False)
        wall, result = timed(lambda: run_fleet(manifest, options))
    finally:
        ray.shutdown()
    if result.n_ok != n_cases or result.concurrency != 2:
        raise Mismatch(f"fleet_mixed: {result.n_ok}/{n_cases} ok, concurrency "
                       f"{result.concurrency}")
    inside = fleet_case_times(output)
    spent = inside["case_s"]
    healthy_s = [v for k, v in spent.items() if k in healthy]
    faulty_s = [v for k, v in spent.items() if k not in healthy]
    shapes = sorted({c.shape for c in cases})
    summary = (f"{len(healthy)} healthy, {len(cases) - len(healthy)} faulty, {len(shapes)} "
               f"shapes; per case median {median(healthy_s):.2f} s healthy, "
               f"{median(faulty_s):.2f} s faulty")
    return Throughput("fleet_mixed", n_cases, wall, 2, {
        "summary": summary, "shapes": shapes, "healthy": sorted(healthy),
        "faulty": sorted(c.name for c in cases if c.name not in healthy),
        "audit_s_inside_actors": inside["cases_s"], "case_s": spent,
        "actors": inside["actors"], "cpu_parallel_capacity_before": capacity["speedup"],
        "probes": [*FLEET_PROBES, "retrain"]})


def fleet_case_times(output: str) -> dict[str, Any]:
    """Where a fleet run's time went: each case's audit time inside its actor, and how many
    actors ran them (wall time minus audit time is Ray's share: actor start, scheduling)."""
    from audit.reports import query

    _, rows = query(output, "select name, duration_s, worker from cases")
    return {"cases_s": sum(r[1] for r in rows), "case_s": {r[0]: r[1] for r in rows},
            "actors": len({r[2] for r in rows})}
