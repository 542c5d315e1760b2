"""A zoo dataset's rows as TFRecord shards of tf.Example, as an ExampleGen or a Beam job writes
them: the same rows as its Parquet, for the tests and benchmarks that compare both formats.

Each column becomes one feature per record: floats a `float_list` (float32, as tf.Example
stores them), integers and booleans an `int64_list`, strings a `bytes_list`; a 2-D column one
list per row (images, sequences); a NaN float stays NaN, a None string is left out of its
record. Records go to the shards in row order (shard 0 holds the first rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["as_tfrecords", "example_bytes", "write_tfrecords"]


def _feature(values: Any, kind: str) -> Any:
    """One cell of a column of dtype kind `kind` as a tf.train.Feature (None: the record
    leaves the feature out)."""
    from tensorflow.core.example import feature_pb2

    if kind == "O" and isinstance(values, (list, tuple, np.ndarray)):  # a list cell (ragged)
        return _feature(np.asarray(values), np.asarray(values).dtype.kind)
    flat = np.asarray(values, dtype=object if kind in "OUS" else None).reshape(-1)
    if kind in "OUS":
        if flat.size == 1 and flat[0] is None:
            return None
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(
            value=[str(v).encode() for v in flat]))
    if kind in "iub":
        return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=flat.astype(np.int64)))
    return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=flat.astype(np.float32)))


def example_bytes(columns: dict[str, np.ndarray], row: int) -> bytes:
    """Row `row` of `columns` as a serialized tf.Example."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for name, column in columns.items():
        feature = _feature(column[row], column.dtype.kind)
        if feature is not None:
            example.features.feature[name].CopyFrom(feature)
    return example.SerializeToString()


def write_tfrecords(columns: dict[str, np.ndarray], folder: Path, stem: str = "eval",
                    shards: int = 4, compression: str = "GZIP") -> list[Path]:
    """The rows of `columns` as `shards` files `<stem>-0000N-of-0000M.tfrecord[.gz]`."""
    import tensorflow as tf

    n = len(next(iter(columns.values())))
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"GZIP": ".tfrecord.gz", "ZLIB": ".tfrecord.zlib", "": ".tfrecord"}[compression]
    paths, bounds = [], np.linspace(0, n, shards + 1).round().astype(int)
    for i in range(shards):
        path = folder / f"{stem}-{i:05d}-of-{shards:05d}{suffix}"
        with tf.io.TFRecordWriter(str(path), compression or None) as writer:
            for row in range(bounds[i], bounds[i + 1]):
                writer.write(example_bytes(columns, row))
        paths.append(path)
    return paths


def as_tfrecords(data: str, folder: Path, shards: int = 4, compression: str = "GZIP") -> str:
    """A zoo case's dataset (Parquet or `.npz`) written again as TFRecord shards in `folder`:
    every row, in order, as Flatline reads them; returns the shards' glob."""
    from audit.io.tables import read_table  # the rows exactly as an audit reads them

    columns = read_table(data).columns
    stem = Path(data).name.split(".", 1)[0]
    write_tfrecords(columns, folder, stem, shards, compression)
    suffix = {"GZIP": ".tfrecord.gz", "ZLIB": ".tfrecord.zlib", "": ".tfrecord"}[compression]
    return str(folder / f"{stem}-*{suffix}")
