"""The plain types every table reader returns and takes: a `Table` of numpy columns, the
`DataOptions` a case gives for its data (format, compression, schema, what its model's inputs
expect), and the seeded row sample Parquet and TFRecord readers share.

Its own module so the Parquet/CSV/npz reader (`tables`) and the TFRecord reader (`tfrecord`)
both use them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["WIRE_KINDS", "ColumnHint", "DataOptions", "Table", "sample_indices"]

#: a tf.Example feature's value lists, by the names its proto gives them
WIRE_KINDS = ("float_list", "int64_list", "bytes_list")


@dataclass
class Table:
    """Columns by name (in file order), how many rows the file holds and how many were read.

    `rows_in_file_estimated` is True when `rows_in_file` is an estimate (a sharded TFRecord
    dataset too big to count: its records per byte times its bytes), not a count."""

    columns: dict[str, np.ndarray]
    rows_in_file: int
    malformed: dict[str, int] = field(default_factory=dict)  # reserved for loaders that parse
    rows_in_file_estimated: bool = False

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass(frozen=True)
class ColumnHint:
    """What the model input a column feeds expects, as plain data (the io layer never sees
    a model): the tf.Example value lists it takes, whether a `bytes_list` holds an encoded
    image, and how to name the input in an error."""

    accepts: frozenset[str] = frozenset(WIRE_KINDS)
    image: bool = False
    what: str = ""  # e.g. "model input 'age' (numeric, float32)"


@dataclass(frozen=True)
class DataOptions:
    """How to read a case's data beyond its location: `format` (`tfrecord`, `parquet`,
    `csv`, `npz`; None: by the suffix), `compression` of TFRecord files (`GZIP`, `ZLIB`,
    `NONE`; None: by the suffix), a TFX `schema` (schema.pbtxt), `hints` by column, and the
    `required` columns every record must hold (the label)."""

    format: str | None = None
    compression: str | None = None
    schema: str | None = None
    hints: Mapping[str, ColumnHint] = field(default_factory=dict)
    required: tuple[str, ...] = ()


def sample_indices(n: int, limit: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices of a seeded sample of `limit` of `n` rows; None keeps every row."""
    if limit is None or n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
