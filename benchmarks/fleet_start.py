"""How soon a fleet starts: from `audit run` to its first case's start, against one
`import tensorflow` in a fresh process (the least a worker must do before any case), and a
worker's own import (TensorFlow, Keras, the engine) with and without the modules Keras imports
that a worker never uses (`audit.models.imports`: `keras._tf_keras`, `keras.wrappers` and
the scikit-learn it imports, `matplotlib.pyplot`).

    python benchmarks/fleet_start.py [--repeats 3]

Prints two lines in the harness's form (bigger is better):

    fleet_first_case: R x (ours FIRST s vs baseline IMPORT_TF s)
    worker_import: R x (ours DEFERRED s vs baseline PLAIN s)

Each side runs in fresh processes, median of `--repeats`; the run is a real `audit run` (an
embedded local Ray, one tiny case with the data and config probes), and the first case's
start is read back from its report (`cases.started_at`), so both sides time what they say.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

IMPORT_TF = "import tensorflow"
WORKER_IMPORT = ("import sys\n{defer}import tensorflow, keras, audit.engine\n"
                 "assert ('keras._tf_keras.keras' in sys.modules) == {loaded}\n"
                 "assert ('sklearn' in sys.modules) == {loaded}")


def _seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def _first_case_s(folder: Path) -> float:
    """Seconds from starting `audit run` to its first case's start, read off the report."""
    import duckdb

    from audit.zoo import write_tiny_case

    folder.mkdir(parents=True)
    model, data = write_tiny_case(folder)
    output = folder / "reports"
    manifest = folder / "fleet.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        name: start
        output: {output}
        probes: [data, config]
        cases:
          - {{name: tiny, model: {model}, data: {data}, label: y}}
        """))
    audit = Path(sys.executable).with_name("audit")
    start = time.time()
    subprocess.run([str(audit), "run", str(manifest), "--no-progress"], check=True,
                   capture_output=True)
    first = duckdb.sql(f"select min(epoch(started_at)) from read_parquet("
                       f"'{output}/cases/**/*.parquet')").fetchall()[0][0]
    return float(first) - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tf_s = statistics.median(_seconds(IMPORT_TF) for _ in range(args.repeats))
    with tempfile.TemporaryDirectory(prefix="flatline-start-") as tmp:
        first_s = statistics.median(_first_case_s(Path(tmp) / str(i))
                                    for i in range(args.repeats))
    defer = "from audit.models.imports import defer_unused_imports as d; d()\n"
    plain_s = statistics.median(_seconds(WORKER_IMPORT.format(defer="", loaded=True))
                                for _ in range(args.repeats))
    deferred_s = statistics.median(_seconds(WORKER_IMPORT.format(defer=defer, loaded=False))
                                   for _ in range(args.repeats))
    print(f"fleet_first_case: {tf_s / first_s:.2f} x (ours {first_s:.2f} s vs baseline "
          f"{tf_s:.2f} s)")
    print(f"worker_import: {plain_s / deferred_s:.2f} x (ours {deferred_s:.2f} s vs baseline "
          f"{plain_s:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
