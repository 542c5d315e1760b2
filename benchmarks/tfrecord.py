"""Reading a case's data from 10M tf.Example records in gzipped TFRecord shards against the same
rows in one Parquet file: peak memory and load time, both through `read_table` with the same
columns, `max_rows` and seed, each read in a fresh process that imports TensorFlow first (so
the memory ratio is of the data, not of the import).

    python benchmarks/tfrecord.py [--records 10000000] [--shards 16] [--max-rows 20000]
                                  [--repeats 3] [--cache DIR]

Prints two lines in the harness's form (bigger is better):

    tfrecord_rss: R x (ours TF MiB vs baseline PARQUET MiB)      R = Parquet RSS / TFRecord RSS
    tfrecord_load: R x (ours TF s vs baseline PARQUET s)         R = Parquet s / TFRecord s

against the targets `tfrecord_rss >= 0.8` and `tfrecord_load >= 0.5` (the exit code is 1 when
one is missed), then a JSON line. Peak RSS is `getrusage(RUSAGE_SELF).ru_maxrss` of the child,
load time the `read_table` call alone; each is the median of `--repeats` children per side.
The data is generated in a child of its own: a child inherits its parent's peak RSS as its
`ru_maxrss`, so the process that starts the readers never holds the data.

The data (10 float32 features, an int category, a float label) is generated once and cached
under `--cache` (default `$FLATLINE_CACHE_DIR` or `~/.cache/flatline`, then
`bench-tfrecord-<records>x<shards>/`): records are serialized with numpy from one fixed
tf.Example layout (every record has the same fields, so the bytes of the floats are all that
differ), then framed, checksummed and gzipped by TensorFlow's own writer in `tf.data`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FEATURES = 10
GROUP_ROWS = 500_000
CHUNK = 500_000  # records generated at a time
TARGETS = {"tfrecord_rss": 0.8, "tfrecord_load": 0.5}

READ = """
import json, os, resource, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow  # both sides: the ratio is of the data, not of the import
from audit.io.tables import read_table
columns = json.loads(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
table = read_table(sys.argv[1], columns, int(sys.argv[3]), int(sys.argv[4]))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
hwm = next(int(line.split()[1]) / 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM"))  # the same peak, as the kernel keeps it for this process
print(json.dumps({"seconds": seconds, "peak_mib": peak, "import_mib": before, "hwm_mib": hwm,
                  "rows": table.rows, "rows_in_file": table.rows_in_file,
                  "estimated": table.rows_in_file_estimated,
                  "first": float(table.columns["x0"][0])}))
"""


def _columns(start: int, n: int) -> dict[str, np.ndarray]:
    """Rows `start .. start + n` of the dataset (seeded by their position)."""
    rng = np.random.default_rng(start)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    weights = np.linspace(-1, 1, FEATURES).astype(np.float32)
    return {**{f"x{j}": x[:, j] for j in range(FEATURES)},
            "cat": rng.integers(0, 10, n).astype(np.int64), "y": x @ weights}


def _template(columns: dict[str, np.ndarray]) -> tuple[bytes, dict[str, int]]:
    """One record's bytes with every value zero, and the offset of each value in it: a float
    feature's 4 bytes, an int feature's one-byte varint (values 0..127)."""
    import tensorflow as tf

    feature = {}
    for name, values in columns.items():
        if values.dtype.kind == "i":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))
        else:  # a marker value, found in the bytes below
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[1.0]))
    offsets, raw = {}, bytearray()
    for name in columns:  # one field at a time: a map's order on the wire is the writer's
        single = tf.train.Example(features=tf.train.Features(feature={name: feature[name]}))
        part = single.SerializeToString()[2:]  # without the Features' tag and length
        marker = np.float32(1.0).tobytes() if columns[name].dtype.kind == "f" else b"\x01"
        offsets[name] = len(raw) + part.rindex(marker)
        raw += part
    head = b"\x0a" + _varint(len(raw))
    return head + bytes(raw), {k: v + len(head) for k, v in offsets.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _serialized(columns: dict[str, np.ndarray]) -> list[bytes]:
    template, offsets = _template(columns)
    n = len(columns["y"])
    rows = np.tile(np.frombuffer(template, np.uint8), (n, 1))
    for name, at in offsets.items():
        values = columns[name]
        if values.dtype.kind == "f":
            rows[:, at:at + 4] = values.astype("<f4").view(np.uint8).reshape(n, 4)
        else:
            rows[:, at] = values.astype(np.uint8)
    return [row.tobytes() for row in rows]


def generate(folder: Path, records: int, shards: int) -> None:
    """The Parquet file and the gzipped shards of the same rows (shard i holds a contiguous
    range of rows), written once into `folder`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    writer = None
    bounds = np.linspace(0, records, shards + 1).round().astype(int)
    for shard in range(shards):
        path = folder / f"eval-{shard:05d}-of-{shards:05d}.tfrecord.gz"
        parts = []
        for start in range(bounds[shard], bounds[shard + 1], CHUNK):
            n = min(CHUNK, bounds[shard + 1] - start)
            columns = _columns(start, n)
            table = pa.table(columns)
            writer = writer or pq.ParquetWriter(folder / "eval.parquet.tmp", table.schema)
            writer.write_table(table, row_group_size=GROUP_ROWS)
            parts.extend(_serialized(columns))
        tf.data.experimental.TFRecordWriter(str(path), "GZIP").write(
            tf.data.Dataset.from_tensor_slices(parts))
        print(f"  shard {shard + 1}/{shards} ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr)
    assert writer is not None
    writer.close()
    os.replace(folder / "eval.parquet.tmp", folder / "eval.parquet")
    check = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(
        str(folder / f"eval-00000-of-{shards:05d}.tfrecord.gz"), "GZIP"))).numpy())
    assert check.features.feature["x0"].float_list.value[0] == _columns(0, 1)["x0"][0]
    print(f"generated {records:,} records in {shards} shards and one Parquet file in "
          f"{time.perf_counter() - started:.0f} s ({_mib(folder)} MiB)", file=sys.stderr)


def _mib(folder: Path) -> str:
    sizes = {p.suffix: p.stat().st_size for p in folder.iterdir()}
    shards = sum(p.stat().st_size for p in folder.glob("*.tfrecord.gz"))
    return f"TFRecord {shards / 2**20:,.0f}, Parquet {sizes.get('.parquet', 0) / 2**20:,.0f}"


def read(location: str, columns: list[str], max_rows: int, seed: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", READ, location, json.dumps(columns),
                           str(max_rows), str(seed)], capture_output=True, text=True,
                          check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        raise SystemExit(f"reading {location} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", help="where the generated data is kept")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = Path(args.cache or os.environ.get("FLATLINE_CACHE_DIR") or
                 Path.home() / ".cache" / "flatline")
    folder = cache / f"bench-tfrecord-{args.records}x{args.shards}"
    if args.generate_only:
        generate(folder, args.records, args.shards)
        return 0
    if not (folder / "eval.parquet").exists():  # in a child: this process stays small, and a
        subprocess.run([sys.executable, __file__, "--generate-only", "--records",  # child
                        str(args.records), "--shards", str(args.shards), "--cache",  # starts
                        str(cache)], check=True)  # with its parent's peak RSS as its own
    columns = [*(f"x{j}" for j in range(FEATURES)), "cat", "y"]
    sides = {"parquet": str(folder / "eval.parquet"), "tfrecord": str(folder)}
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.repeats):  # alternated, so load on the machine falls on both
        for side, location in sides.items():
            runs[side].append(read(location, columns, args.max_rows, args.seed))
    med = {side: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "peak_mib")}
           for side, rs in runs.items()}
    pq_, tf_ = med["parquet"], med["tfrecord"]
    ratios = {"tfrecord_rss": pq_["peak_mib"] / tf_["peak_mib"],
              "tfrecord_load": pq_["seconds"] / tf_["seconds"]}
    print(f"tfrecord_rss: {ratios['tfrecord_rss']:.2f} x (ours {tf_['peak_mib']:.0f} MiB vs "
          f"baseline {pq_['peak_mib']:.0f} MiB)")
    print(f"tfrecord_load: {ratios['tfrecord_load']:.2f} x (ours {tf_['seconds']:.2f} s vs "
          f"baseline {pq_['seconds']:.2f} s)")
    last = {side: rs[-1] for side, rs in runs.items()}
    print(json.dumps({"records": args.records, "shards": args.shards,
                      "max_rows": args.max_rows, "seed": args.seed, "medians": med,
                      "ratios": ratios, "targets": TARGETS, "last": last}))
    return 0 if all(ratios[k] >= TARGETS[k] for k in TARGETS) else 1


if __name__ == "__main__":
    sys.exit(main())
