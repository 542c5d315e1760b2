"""Cases per minute with one worker slot vs two, on the same fleet, in the same process.

    python benchmarks/fleet_parallel.py              # 24 cases, every probe, retrain 5 epochs
    python benchmarks/fleet_parallel.py --cases 200 --probes data,config    # cheap cases

Builds small Keras models (a few architectures) with their data in a temporary folder, starts an
embedded local Ray with 2 CPUs, runs the fleet with `--max-concurrency 1`, then 2, and prints
cases/minute for each: "steady" counts the time every worker was busy (actor start-up, mostly
importing TensorFlow, left out), "whole" the run's wall time from start to end.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def build_models(folder: Path, n: int) -> list[dict[str, str]]:
    """`n` small regression models (varying width/depth) with their data, as manifest cases."""
    import keras
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    cases = []
    for i in range(n):
        keras.utils.set_random_seed(i)
        rng = np.random.default_rng(i)
        x = rng.normal(size=(2000, 8)).astype("float32")
        y = (x @ rng.normal(size=8) + 0.1 * rng.normal(size=2000)).astype("float32")
        layers = [keras.Input((8,))]
        layers += [keras.layers.Dense(16 + 8 * (i % 3), activation="relu")
                   for _ in range(1 + i % 3)]
        model = keras.Sequential([*layers, keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        model.save(folder / f"m{i:02d}.keras")
        columns = {f"x{j}": x[:, j] for j in range(8)} | {"y": y}
        pq.write_table(pa.table(columns), folder / f"m{i:02d}.parquet")
        cases.append({"name": f"m{i:02d}", "model": f"m{i:02d}.keras",
                      "data": f"m{i:02d}.parquet", "label": "y"})
    return cases


def rates(output: str, run_id: str, wall_s: float) -> dict[str, float]:
    """Steady-state and whole-run cases per minute of one run, from its report."""
    from audit.reports import query

    _, rows = query(output, "select worker, epoch(started_at), epoch(finished_at) from cases "
                            f"where run_id = '{run_id}'")
    by_worker: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for worker, start, end in rows:
        by_worker[worker].append((start, end))
    first = max(min(s for s, _ in spans) for spans in by_worker.values())
    last = min(max(e for _, e in spans) for spans in by_worker.values())
    inside = sum(1 for _, s, e in rows if s >= first and e <= last)
    return {"cases": len(rows), "steady": 60 * inside / (last - first),
            "whole": 60 * len(rows) / wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--probes",
                        default="data,config,sensitivity,activations,gradients,retrain")
    parser.add_argument("--epochs", type=int, default=5, help="retrain budget (if retrain)")
    args = parser.parse_args()

    import ray

    from audit.fleet import FleetOptions, run_fleet
    from audit.manifest.schema import parse_manifest

    with tempfile.TemporaryDirectory(prefix="flatline-bench-") as tmp:
        folder = Path(tmp)
        doc: dict[str, Any] = {
            "name": "bench", "output": "reports", "resources": {"num_cpus": 1},
            "probes": args.probes.split(","),
            "budget": {"epochs": args.epochs, "max_seconds": 120, "seeds": 1},
            "execution": {"cases_per_actor": 1000},
            "cases": build_models(folder, args.cases),
        }
        manifest = parse_manifest(doc, base_dir=str(folder))
        cases = manifest.cases()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        try:
            results = {}
            for slots in (1, 2):
                started = time.time()
                run = run_fleet(manifest, FleetOptions(run_id=f"slots-{slots}",
                                                       max_concurrency=slots, progress=False,
                                                       handle_signals=False), cases=cases)
                assert run.n_ok == len(cases), run
                results[slots] = rates(run.output, run.run_id, time.time() - started)
        finally:
            ray.shutdown()
    print(f"{len(cases)} cases, probes {args.probes}, 2 CPUs")
    for slots, r in results.items():
        print(f"  {slots} slot{'s' if slots > 1 else ' '}: {r['steady']:7.1f} cases/min steady, "
              f"{r['whole']:7.1f} whole run")
    print(f"  ratio 2/1: steady {results[2]['steady'] / results[1]['steady']:.2f}, "
          f"whole {results[2]['whole'] / results[1]['whole']:.2f}")


if __name__ == "__main__":
    main()
