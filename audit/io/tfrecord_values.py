"""Parsed tf.Example batches as the columns Parquet gives for the same data: each batch
checked (the label in every record, a schema's fixed shape, encoded images decoded), then the
batches of a column joined and shaped: one value per record as a 1-D array (NaN, or None for
text, where a record lacks it), lists of one length as `(rows, values)` (a schema's shape or
an image's `(H, W, C)` kept), ragged lists as an object array of lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.errors import TableError
from audit.io.tfrecord_files import Shard
from audit.util.text import one_line

__all__ = ["ColumnSpec", "checked", "column", "decode_images"]


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is parsed and checked: its value list, whether it holds encoded images,
    a fixed shape, and what it is expected to be (for messages)."""

    kind: str  # float_list | int64_list | bytes_list
    image: bool = False
    shape: tuple[int, ...] | None = None
    expects: str = ""  # "the schema says FLOAT", "model input 'age' ... expects ..."


def checked(parsed: dict[str, Any], specs: dict[str, ColumnSpec], shard: Shard,
            positions: np.ndarray, required: tuple[str, ...]) -> dict[str, Any]:
    """One parsed batch as (values, lengths) per column, checked against the specs: the
    label in every record, a schema's shape, images decoded."""
    out = {}
    for name, sparse in parsed.items():
        rows = sparse.indices.numpy()[:, 0]
        lengths = np.bincount(rows, minlength=len(positions))
        if name in required and not lengths.all():
            record = int(positions[np.argmin(lengths > 0)])
            raise TableError(f"{shard.location}: record {record}: no label {name!r} (the "
                             "feature is missing or empty)")
        values, s = sparse.values.numpy(), specs[name]
        if s.image:
            values, lengths = decode_images(values, lengths, shard, positions, name)
        elif s.shape is not None:
            size = int(np.prod(s.shape))
            bad = (lengths != size) & (lengths > 0)
            if bad.any():
                at = int(np.argmax(bad))
                raise TableError(f"{shard.location}: record {int(positions[at])}: feature "
                                 f"{name!r} holds {int(lengths[at])} values; the schema's "
                                 f"shape is {list(s.shape)} ({size} values)")
        out[name] = (values, lengths)
    return out


def decode_images(values: np.ndarray, lengths: np.ndarray, shard: Shard,
                   positions: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Encoded images (PNG, JPEG, GIF, BMP), one per record, as float32 pixels `(k, H, W, C)`
    with one value per record in `lengths`."""
    import tensorflow as tf

    if (lengths != 1).any():
        at = int(np.argmax(lengths != 1))
        raise TableError(f"{shard.location}: record {int(positions[at])}: feature {name!r} "
                         f"holds {int(lengths[at])} images; an image input takes one")
    pixels = []
    for row, encoded in enumerate(values):
        try:
            image = tf.io.decode_image(encoded, expand_animations=False).numpy()
        except tf.errors.InvalidArgumentError as exc:
            raise TableError(f"{shard.location}: record {int(positions[row])}: feature "
                             f"{name!r} is not an encoded image ({one_line(exc, 120)})") from None
        if pixels and image.shape != pixels[0].shape:
            raise TableError(f"{shard.location}: record {int(positions[row])}: image "
                             f"{name!r} is {image.shape}; record {int(positions[0])}'s is "
                             f"{pixels[0].shape}")
        pixels.append(image.astype(np.float32))
    return np.stack(pixels), lengths


def column(name: str, spec: ColumnSpec, chunks: list[tuple[np.ndarray, np.ndarray]],
           shards: list[Shard]) -> np.ndarray:
    """One column from its parsed chunks, shaped as a Parquet column of the same data."""
    if spec.image:
        shapes = sorted({v.shape[1:] for v, _ in chunks})
        if len(shapes) > 1:
            raise TableError(f"{shards[0].location}: images in {name!r} have shapes {shapes}; "
                             "an image input takes one shape")
        return np.concatenate([v for v, _ in chunks]) if chunks else np.zeros((0, 1), "f")
    values = (np.concatenate([v for v, _ in chunks]) if chunks else np.zeros(0))
    lengths = np.concatenate([n for _, n in chunks]) if chunks else np.zeros(0, np.int64)
    if spec.kind == "bytes_list":
        values = np.array([v.decode("utf-8", "replace") for v in values], dtype=object)
    elif spec.kind == "float_list":
        values = values.astype(np.float64)
    n = len(lengths)
    if n == 0 or (lengths == 1).all():
        return values
    if (lengths <= 1).all():  # one value or none: missing cells, as Parquet's nulls
        out = np.full(n, None, dtype=object) if values.dtype == object else np.full(n, np.nan)
        out[lengths == 1] = values
        return out
    if (lengths == lengths[0]).all():
        shape = spec.shape if spec.shape and len(spec.shape) > 1 else (int(lengths[0]),)
        return values.reshape((n, *shape))
    parts = np.split(values, np.cumsum(lengths)[:-1])
    out = np.empty(n, dtype=object)
    out[:] = [part.tolist() for part in parts]
    return out
