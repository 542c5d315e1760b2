"""Memory of a case on a big table: a 10M-row, 50-column Parquet file, audited in a fresh
process (as an actor would), against a process that loads the whole table as the obvious code
would (`pq.read_table`), measured in the same run.

    python benchmarks/big_table.py [--rows 10000000] [--columns 50] [--keep DIR]

Prints `big_table_rss: RATIO x (ours ... MiB vs baseline ... MiB)` (baseline / ours, bigger is
better) and ours against the 1 GiB target. Peak RSS comes from `getrusage` of each child. The
file (float32 columns, row groups of 500,000 rows) is written to a temp folder first.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MIB = 1024.0
GROUP_ROWS = 500_000

AUDIT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from audit.engine import audit_case
from audit.manifest.case import CaseSpec
report = audit_case(CaseSpec(name="big", model=sys.argv[1], data=sys.argv[2], label="y"))
rows = {m.metric: m.value for m in report.metrics if m.probe == "data"}
print(report.status, report.verdict, int(rows.get("rows", 0)), int(rows.get("rows_in_file", 0)))
"""

LOAD_ALL = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras  # the same imports as the audit, so the difference is the table
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[2])
x = table.drop_columns(["y"]).to_pandas().to_numpy()
print(table.num_rows, x.shape)
"""


def write_table(path: Path, rows: int, columns: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    weights = np.random.default_rng(0).normal(size=columns).astype(np.float32)
    for start in range(0, rows, GROUP_ROWS):
        n = min(GROUP_ROWS, rows - start)
        x = np.random.default_rng(start).normal(size=(n, columns)).astype(np.float32)
        table = pa.table({**{f"x{j}": x[:, j] for j in range(columns)}, "y": x @ weights})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=GROUP_ROWS)
    writer.close()


def write_model(path: Path, columns: int) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((columns,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.save(path)


def peak_rss_mib(script: str, *args: str) -> tuple[float, str, float]:
    """Run `script` in a fresh Python; its peak RSS in MiB, its output and its seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          check=True)
    seconds = time.perf_counter() - started
    # RUSAGE_CHILDREN is the max over children so far: run the smaller one first
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.stdout.strip(), \
        seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--keep", help="write the table here and keep it (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flatline-big-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data, model = folder / "big.parquet", folder / "big.keras"
        if not data.exists():
            started = time.perf_counter()
            write_table(data, args.rows, args.columns)
            size = data.stat().st_size / 2**20
            print(f"wrote {args.rows:,} x {args.columns} float32 columns ({size:,.0f} MiB) in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        write_model(model, args.columns)
        ours, said, ours_s = peak_rss_mib(AUDIT, str(model), str(data))
        print(f"audit: {said} ({ours_s:.0f} s)", file=sys.stderr)
        base, loaded, base_s = peak_rss_mib(LOAD_ALL, str(model), str(data))
        print(f"whole table: {loaded} ({base_s:.0f} s)", file=sys.stderr)
    print(f"big_table_rss: {base / ours:.2f}x (ours {ours:.0f} MiB vs baseline {base:.0f} MiB)")
    print(f"big_table_rss_target: {'met' if ours < TARGET_MIB else 'MISSED'} "
          f"(ours {ours:.0f} MiB, target < {TARGET_MIB:.0f} MiB)")
    print(json.dumps({"rows": args.rows, "columns": args.columns, "ours_mib": ours,
                      "baseline_mib": base, "ours_s": ours_s, "baseline_s": base_s}))
    return 0 if ours < TARGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
