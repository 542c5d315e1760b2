"""A long night of cheap cases: does the driver's memory stay flat, and what does scheduling
cost per case?

    python benchmarks/chaos.py                    # 2,000 cases, probes data, 2 slots
    python benchmarks/chaos.py --cases 500 --slots 1

Builds one tiny Keras model and a 64-row dataset, starts an embedded local Ray with 2 CPUs and
runs a fleet of `--cases` copies of that case (each its own case id) with the `data` probe only,
as `audit run` does. It prints:

- the driver's RSS and live Python objects at 10%, 50% and 100% of the fleet (flat means the
  driver holds nothing per case);
- the scheduler's overhead per case in ms: for each worker, the gap between the end of one
  case's audit and the start of its next (the worker writing its report, returning its status,
  the driver's loop noticing it and submitting the next case), against the audit itself
  (the baseline measured in the same run), and the ratio of the two.

The other chaos checks (a worker killed mid-write, an object store answering 503, two runs into
one output, a full disk) are in the test suite: tests/test_chaos.py, tests/test_chaos_s3.py.
"""

from __future__ import annotations

import argparse
import collections
import gc
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def build_case(folder: Path) -> tuple[Path, Path]:
    """A tiny regression model and its 64-row data."""
    from audit.zoo import write_tiny_case

    return write_tiny_case(folder)


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def gaps_ms(output: str, run_id: str) -> tuple[list[float], list[float]]:
    """(gaps between a worker's consecutive cases, audit times), in ms, from the report."""
    from audit.reports import query

    _, rows = query(output, "select worker, epoch(started_at), epoch(finished_at) from cases "
                            f"where run_id = '{run_id}'")
    by_worker: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for worker, start, end in rows:
        by_worker[worker].append((start, end))
    gaps, audits = [], []
    for spans in by_worker.values():
        spans.sort()
        audits += [1000 * (end - start) for start, end in spans]
        gaps += [1000 * (nxt[0] - cur[1]) for cur, nxt in itertools.pairwise(spans)]
    return gaps, audits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()

    import ray

    from audit.fleet import FleetOptions, RunResult, run_fleet
    from audit.manifest.schema import parse_manifest

    with tempfile.TemporaryDirectory(prefix="flatline-chaos-") as tmp:
        folder = Path(tmp)
        model, data = build_case(folder)
        doc = {"name": "chaos", "output": str(folder / "out"), "probes": ["data"],
               "resources": {"num_cpus": 1}, "execution": {"cases_per_actor": 100_000},
               "cases": [{"name": f"c{i:05d}", "model": str(model), "data": str(data)}
                         for i in range(args.cases)]}
        manifest = parse_manifest(doc, where="chaos benchmark", base_dir=str(folder))
        cases = manifest.cases()
        marks = {max(1, args.cases // 10), max(1, args.cases // 2), args.cases}
        seen: dict[int, tuple[float, int]] = {}

        def measure(result: RunResult) -> None:
            done = result.n_ok + result.n_failed
            if done in marks:
                gc.collect()
                seen[done] = (rss_mib(), len(gc.get_objects()))

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        try:
            start = time.perf_counter()
            result = run_fleet(manifest, FleetOptions(
                run_id="chaos", progress=False, max_concurrency=args.slots,
                temp_root=str(folder)), cases=cases, on_case=measure)
            wall = time.perf_counter() - start
        finally:
            ray.shutdown()
        if result.n_ok != args.cases:
            raise SystemExit(f"MISMATCH: {result.n_ok}/{args.cases} cases ok")
        gaps, audits = gaps_ms(result.output, "chaos")
        leftovers = list((folder / "flatline-workers").iterdir())

    print(f"chaos fleet: {args.cases} cases (probe data), {args.slots} slots, {wall:.1f} s "
          f"({60 * args.cases / wall:.0f} cases/min)")
    points = sorted(seen.items())
    print("driver RSS: " + ", ".join(f"{mib:.1f} MiB at case {n}" for n, (mib, _) in points)
          + f" (growth after case {points[0][0]}: {points[-1][1][0] - points[0][1][0]:+.1f} MiB)")
    print("driver Python objects: " + ", ".join(f"{objs} at case {n}" for n, (_, objs) in points)
          + f" (growth: {points[-1][1][1] - points[0][1][1]:+d})")
    overhead, audit = statistics.median(gaps), statistics.median(audits)
    print(f"scheduler overhead per case: median {overhead:.1f} ms, mean "
          f"{statistics.fmean(gaps):.1f} ms, p95 {statistics.quantiles(gaps, n=20)[-1]:.1f} ms; "
          f"audit per case (baseline): median {audit:.1f} ms; overhead/audit: "
          f"{overhead / audit:.2f} x")
    print(f"worker temp folders left: {len(leftovers)}")


if __name__ == "__main__":
    main()
