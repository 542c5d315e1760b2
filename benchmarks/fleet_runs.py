"""`fleet_parallel` and `fleet_overhead`: the fleet on a local Ray with 1 and 2 worker slots,
and a plain loop of audits against the fleet with one slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import Comparison, Mismatch, log, parallel_capacity, timed

FLEET_PROBES = ("data", "config", "sensitivity", "activations", "gradients")


def fleet_manifest(cases: list[Any], retrain_names: set[str], folder: Path) -> Any:
    """A manifest of the zoo cases: the cheap probes for all, retrain too for some."""
    from audit.spec import parse_manifest

    entries = []
    for case in cases:
        entry: dict[str, Any] = case.spec_fields()
        if case.name in retrain_names:
            entry["probes"] = [*FLEET_PROBES, "retrain"]
        entries.append(entry)
    doc = {"name": "bench-fleet", "output": str(folder / "unused"),
           "resources": {"num_cpus": 1}, "probes": list(FLEET_PROBES), "cases": entries}
    return parse_manifest(doc, where="benchmark fleet", base_dir=str(folder))


def measure_fleet(cases: list[Any], retrain_names: set[str], folder: Path,
                  wanted: set[str]) -> list[Comparison]:
    """The plain loop, 1 slot and 2 slots, back to back on one local Ray (2 CPUs)."""
    import ray

    from audit.engine import audit_case
    from audit.fleet import FleetOptions, run_fleet

    manifest = fleet_manifest(cases, retrain_names, folder)
    specs = manifest.cases()
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
        log(f"fleet: plain loop over {len(specs)} cases ...")

        def loop() -> dict[str, float]:
            spent = {}
            for spec in specs:
                report = audit_case(spec)
                if report.status != "ok":
                    raise Mismatch(f"fleet loop: {spec.name} ended as {report.status}")
                spent[spec.name] = report.duration_s
            return spent

        times["loop"], spent = timed(loop)
        detail["loop"] = {"wall_s": times["loop"], "cases_s": sum(spent.values()),
                          "case_s": spent}
    # address="local": always a fresh Ray of our own, never another one running on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    # 1 slot right after the loop (fleet_overhead compares those two), then 2, 2, 1: a burst of
    # someone else's load then hits both settings alike, and the best run of each counts.
    order = [1, 2, 2, 1] if "fleet_parallel" in wanted else [1]
    runs: dict[int, list[float]] = {1: [], 2: []}
    try:
        for k, slots in enumerate(order):
            label = f"{slots}slot_{'ab'[k // 2] if len(order) > 1 else 'a'}"
            capacity_now = parallel_capacity()
            log(f"fleet: {len(specs)} cases with {slots} slot(s) ...")
            output = str(folder / f"out-{label}")
            options = FleetOptions(output=output, max_concurrency=slots, progress=False,
                                   handle_signals=False)
            elapsed, result = timed(lambda o=options: run_fleet(manifest, o, cases=specs))
            if result.n_ok != len(specs) or result.concurrency != slots:
                raise Mismatch(f"fleet with {slots} slot(s): {result.n_ok}/{len(specs)} ok, "
                               f"concurrency {result.concurrency}")
            runs[slots].append(elapsed)
            detail[label] = {"wall_s": elapsed, **fleet_case_times(output),
                             "cpu_parallel_capacity_before": capacity_now["speedup"]}
    finally:
        ray.shutdown()
    times["1slot"] = runs[1][0]  # the run next to the loop
    if runs[2]:
        times["1slot_best"], times["2slot_best"] = min(runs[1]), min(runs[2])
    used["runs"] = detail
    used["run_order"] = [*(["loop"] if "loop" in detail else []),
                         *(f"{s} slot(s)" for s in order)]
    used["cpu_parallel_capacity_start"] = capacity
    used["cpu_parallel_capacity_after"] = parallel_capacity()
    out = []
    if "fleet_parallel" in wanted:
        out.append(Comparison("fleet_parallel", times["2slot_best"], times["1slot_best"],
                              times["1slot_best"] / times["2slot_best"], [], {
                                  "fleet": used, "timing": "best of two runs each, in the "
                                  "order 1, 2, 2, 1 slot(s)"}))
    if "fleet_overhead" in wanted:
        out.append(Comparison("fleet_overhead", times["1slot"], times["loop"],
                              times["loop"] / times["1slot"], [], {
                                  "fleet": used, "timing": "the loop, then the first 1-slot "
                                  "run", "note": "the loop runs in this process (TF "
                                  "already imported, default thread pools); the fleet's actor "
                                  "starts fresh and gets 1 CPU"}))
    return out


def fleet_case_times(output: str) -> dict[str, Any]:
    """Where a fleet run's time went: each case's audit time inside its actor, and how many
    actors ran them (wall time minus audit time is Ray's share: actor start, scheduling)."""
    from audit.reports import query

    _, rows = query(output, "select name, duration_s, worker from cases")
    return {"cases_s": sum(r[1] for r in rows), "case_s": {r[0]: r[1] for r in rows},
            "actors": len({r[2] for r in rows})}
