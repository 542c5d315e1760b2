"""Reading TFRecord files of `tf.Example` records (one file, a glob of shards or a folder,
local or in a bucket, plain, GZIP or ZLIB) into the same `Table` Parquet gives.

The feature spec comes from a TFX schema when the case names one (`tf_schema`), else from
what the model's inputs expect (`ColumnHint`s the subject layer passes down as plain data),
else from the first records: a `float_list` is numeric, an `int64_list` ids or numbers, a
`bytes_list` text or, for an image input, encoded images (`tf.io.decode_image`). Records are
parsed in batches with `tf.io.parse_example` (every feature as a variable-length list), then
shaped as Parquet's columns are: one value per record as a 1-D array (NaN, or None for text,
where a record lacks it), lists of one length as `(rows, values)`, ragged lists as object
arrays of lists. Column order is the schema's, else the names in natural order (`x2` before
`x10`): a tf.Example is a map, its order on the wire means nothing.

The sample (`tfrecord_plan`): a dataset of at most `EXACT_BYTES` is counted and sampled
exactly as a Parquet file of the same rows (the same seeded row indices over the shards in
name order), so both give the same rows; a bigger one is sampled by blocks: seeded shards, a
seeded skip in each, a contiguous block of records after it, read interleaved with `tf.data`.
Only the sampled records are parsed and kept. Remote shards that the sample reads (and no
others) are streamed to a temporary folder, kept until the read ends: TensorFlow 2.21 reads no
s3:// or gs:// itself. `tfrecord_values` shapes parsed batches into columns.

Bad input is one `TableError` line naming the file and the record: a corrupt record
(`DataLossError`), a record without the label, a feature whose type disagrees with the schema
or the input.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.errors import TableError
from audit.io import locations
from audit.io.tabular import ColumnHint, DataOptions, Table
from audit.io.tf_schema import SchemaFeature, read_schema
from audit.io.tfrecord_files import Shard, read_prefix, shard_files
from audit.io.tfrecord_plan import Block, Plan, plan_sample
from audit.io.tfrecord_values import ColumnSpec, checked, column
from audit.util.text import one_line

__all__ = ["column_names", "read_tfrecord"]

PEEK_RECORDS = 100  # the first records of the first shard, read to see the features
BATCH = 1024  # records parsed at a time
READ_PARALLEL = 4  # shards read at once
READ_BUFFER = 4 << 20  # bytes tf.data reads from a shard at a time (1 MiB inflates 20% slower)
_TYPE_ERROR = re.compile(r"Key: (?P<key>.+?), Index: (?P<index>\d+)\.\s+Data types don't match\."
                         r"\s+Expected type: (?P<expected>\w+), Actual type: (?P<actual>\w+)")
_WIRE = {"float": "float_list", "int64": "int64_list", "string": "bytes_list"}


def column_names(location: str, options: DataOptions) -> list[str]:
    """The features of the dataset: the schema's, else those of its first records."""
    shards = shard_files(location, options.compression)
    if options.schema:
        return list(read_schema(options.schema))
    return _natural(_observe(shards[0]))


def read_tfrecord(location: str, columns: list[str] | None, max_rows: int | None, seed: int,
                  options: DataOptions) -> Table:
    """The dataset's columns (all, or `columns`), at most `max_rows` records sampled with
    `seed` (see `audit.io.tfrecord_plan` for what the sample is)."""
    shards = shard_files(location, options.compression)
    schema = read_schema(options.schema) if options.schema else {}
    observed = _observe(shards[0])
    names = columns if columns is not None else (list(schema) or _natural(observed))
    specs = {n: _resolve(n, observed, schema, options.hints, shards[0].location)
             for n in names}
    chunks: list[_Chunk] = []
    with _Copies() as copies:
        plan = plan_sample(shards, max_rows, seed,
                           counter=lambda shard: _count(shard, copies.path(shard)))
        for blocks in plan.rounds():
            results = _read_blocks(shards, blocks, specs, plan, options.required, copies)
            plan.record(blocks, [(r.read, r.kept) for r in results])
            chunks.extend(c for r in results for c in r.chunks)
    chunks.sort(key=lambda c: (c.shard, c.first))
    table = {n: column(n, specs[n], [c.columns[n] for c in chunks], shards) for n in names}
    return Table(table, plan.rows_in_file(), rows_in_file_estimated=plan.estimated)


def _a(kind: str) -> str:
    """`a float_list`, `an int64_list`."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _natural(names: Any) -> list[str]:
    return sorted(names, key=lambda n: [int(p) if p.isdigit() else p
                                        for p in re.split(r"(\d+)", n)])


# ---------------------------------------------------------------- the feature spec


def _observe(shard: Shard) -> dict[str, list[tuple[str, int]]]:
    """Each feature of the first records: the value lists it comes as, each with the first
    record holding it (more than one kind is an error, judged by `_resolve`)."""
    from google.protobuf.message import DecodeError  # TensorFlow's protobuf: with it
    from tensorflow.core.example import example_pb2

    seen: dict[str, list[tuple[str, int]]] = {}
    prefix = read_prefix(shard, PEEK_RECORDS)
    for i, raw in enumerate(prefix.records[:PEEK_RECORDS]):
        try:
            example = example_pb2.Example.FromString(raw)
        except DecodeError as exc:
            _check_crcs(shard, prefix.framed)  # a corrupt record is a DataLossError
            raise TableError(f"{shard.location}: record {i}: not a tf.Example "
                             f"({one_line(exc)})") from None
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            kinds = seen.setdefault(name, [])
            if kind is not None and all(k != kind for k, _ in kinds):
                kinds.append((kind, i))
    return {name: kinds for name, kinds in seen.items() if kinds}


def _resolve(name: str, observed: dict[str, list[tuple[str, int]]],
             schema: dict[str, SchemaFeature], hints: Any, where: str) -> ColumnSpec:
    """The column's spec: the schema's type, else the type its first records hold, checked
    against what its model input accepts. A first record that disagrees is an error."""
    seen = observed.get(name, [])
    hint: ColumnHint | None = hints.get(name)
    if name in schema:
        feature = schema[name]
        spec = ColumnSpec(feature.kind, feature.image, feature.shape,
                          f"the schema says {feature.type_name}")
        accepts: frozenset[str] = frozenset({feature.kind})
    elif hint is not None:
        kinds = [k for k, _ in seen if k in hint.accepts] or sorted(hint.accepts)
        spec = ColumnSpec(kinds[0], hint.image and kinds[0] == "bytes_list", None,
                          f"{hint.what} expects {_a(' or '.join(sorted(hint.accepts)))}")
        accepts = hint.accepts
    elif seen:
        spec = ColumnSpec(seen[0][0], False, None,
                          f"record {seen[0][1]} of {where} holds {_a(seen[0][0])}")
        accepts = frozenset({seen[0][0]})
    else:
        raise TableError(f"{where}: feature {name!r} not found in the first "
                         f"{PEEK_RECORDS} records; features are {_natural(observed)}")
    for kind, record in seen:
        if kind not in accepts:
            raise TableError(f"{where}: record {record}: feature {name!r} is {_a(kind)}; "
                             f"{spec.expects}")
    if len(seen) > 1:  # both accepted (a numeric input), but one column parses as one kind
        (first, at), (kind, record) = seen[:2]
        raise TableError(f"{where}: record {record}: feature {name!r} is {_a(kind)}; record "
                         f"{at} holds {_a(first)}")
    return spec


# ---------------------------------------------------------------- reading with tf.data


def _count(shard: Shard, path: str) -> int:
    """Records in one (local) shard, read through tf.data (CRCs checked)."""
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset(path, shard.compression, buffer_size=READ_BUFFER)
    try:
        add = tf.autograph.experimental.do_not_convert(
            lambda n, b: n + tf.size(b, out_type=tf.int64))
        return int(dataset.batch(8192).reduce(np.int64(0), add))
    except tf.errors.DataLossError:
        raise _corrupt(shard, path, 0) from None


@dataclass
class _Chunk:
    """Parsed records of one batch: their shard, the first one's position, and per column
    its values and each record's number of values."""

    shard: int
    first: int
    columns: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class _BlockRead:
    read: int = 0  # records read from the block
    kept: int = 0  # of them, kept by the sample
    chunks: list[_Chunk] = field(default_factory=list)


def _read_blocks(shards: list[Shard], blocks: list[Block], specs: dict[str, ColumnSpec], plan: Plan,
                 required: tuple[str, ...], copies: _Copies,
                 careful: bool = False) -> list[_BlockRead]:
    """Read and parse `blocks` (interleaved over their shards, the plan's records kept and
    parsed inside tf.data). A record that does not parse is found again `careful`ly: each
    batch parsed on its own, so the error names its shard and record."""
    import tensorflow as tf

    paths = [copies.path(shards[b.shard]) for b in blocks]
    keep = plan.keep_flags()
    keep_all = None if keep is None else tf.constant(keep)
    offsets = [0 if plan.offsets is None else int(plan.offsets[b.shard]) for b in blocks]
    spec = {n: tf.io.VarLenFeature(_TF_DTYPES[s.kind](tf)) for n, s in specs.items()}
    plain = tf.autograph.experimental.do_not_convert  # TF ops only: nothing to convert

    def block(path: Any, compression: Any, skip: Any, take: Any, index: Any,
              offset: Any) -> Any:
        records = tf.data.TFRecordDataset(path, compression, buffer_size=READ_BUFFER).skip(skip)
        pairs = tf.data.Dataset.zip(tf.data.Dataset.range(skip, tf.int64.max),
                                    records.take(take))

        def kept(p: Any, r: Any) -> tuple[Any, Any]:
            mask = tf.gather(keep_all, offset + p)
            return tf.boolean_mask(p, mask), tf.boolean_mask(r, mask)

        batches = pairs.batch(BATCH)
        if keep_all is not None:  # per batch, not per record: a filter per record costs more
            batches = batches.map(plain(kept)).filter(plain(lambda p, _: tf.size(p) > 0))
        return batches.map(plain(lambda p, r: (index, p, r)))

    dataset = tf.data.Dataset.from_tensor_slices((
        paths, [shards[b.shard].compression for b in blocks],
        np.array([b.skip for b in blocks], np.int64),
        np.array([b.take for b in blocks], np.int64), np.arange(len(blocks), dtype=np.int64),
        np.array(offsets, np.int64)))
    parallel = min(len(blocks), READ_PARALLEL)
    dataset = dataset.interleave(plain(block), cycle_length=parallel,
                                 num_parallel_calls=parallel, deterministic=True)
    if not careful:
        dataset = dataset.map(plain(lambda i, p, r: (i, p, tf.io.parse_example(r, spec))),
                              num_parallel_calls=2, deterministic=True)
    results = [_BlockRead() for _ in blocks]
    try:
        for index, positions, records in dataset.prefetch(2):
            result, block_ = results[int(index)], blocks[int(index)]
            pos, shard = positions.numpy(), shards[block_.shard]
            parsed = _parse(records, spec, specs, shard, pos) if careful else records
            result.chunks.append(_Chunk(block_.shard, int(pos[0]),
                                        checked(parsed, specs, shard, pos, required)))
            result.read += len(pos)
            result.kept += len(pos)
    except tf.errors.DataLossError:
        for block_, path in zip(blocks, paths, strict=True):  # which shard: each read alone
            _count(shards[block_.shard], path)
        raise TableError(f"{shards[blocks[0].shard].location}: corrupt TFRecord data "
                         "(DataLossError)") from None
    except tf.errors.InvalidArgumentError as exc:
        if careful:
            raise TableError(f"{shards[blocks[0].shard].location}: cannot parse as tf.Example "
                             f"({one_line(exc)})") from None
        return _read_blocks(shards, blocks, specs, plan, required, copies, careful=True)
    return results


_TF_DTYPES = {"float_list": lambda tf: tf.float32, "int64_list": lambda tf: tf.int64,
              "bytes_list": lambda tf: tf.string}


def _parse(records: Any, spec: dict[str, Any], specs: dict[str, ColumnSpec], shard: Shard,
           positions: np.ndarray) -> Any:
    """One batch parsed on its own: a type that disagrees names its record."""
    import tensorflow as tf

    try:
        return tf.io.parse_example(records, spec)
    except tf.errors.InvalidArgumentError as exc:
        raise _type_error(exc, shard, positions, specs) from None


def _type_error(exc: Exception, shard: Shard, positions: np.ndarray,
                specs: dict[str, ColumnSpec]) -> TableError:
    found = _TYPE_ERROR.search(str(exc))
    if not found:
        return TableError(f"{shard.location}: records {int(positions[0])}.."
                          f"{int(positions[-1])}: cannot parse as tf.Example "
                          f"({one_line(exc)})")
    key, record = found["key"], int(positions[int(found["index"])])
    actual = _WIRE.get(found["actual"], found["actual"])
    expects = specs[key].expects if key in specs else f"expected a {found['expected']}"
    return TableError(f"{shard.location}: record {record}: feature {key!r} is {_a(actual)}; "
                      f"{expects}")


def _corrupt(shard: Shard, path: str, start: int) -> TableError:
    """Where a shard is corrupt: its records counted from `start` in batches up to the batch
    that fails, then one by one within it."""
    import tensorflow as tf

    good = start
    try:
        for batch in tf.data.TFRecordDataset(path, shard.compression).skip(start).batch(4096):
            good += len(batch)
    except tf.errors.DataLossError as exc:
        error = exc
        with contextlib.suppress(tf.errors.DataLossError):
            for _ in tf.data.TFRecordDataset(path, shard.compression).skip(good):
                good += 1
        detail = one_line(str(error).split("}}")[-1].split("[Op:")[0].strip(), 160)
        return TableError(f"{shard.location}: record {good}: corrupt (DataLossError: "
                          f"{detail})")
    return TableError(f"{shard.location}: corrupt TFRecord data (DataLossError)")


def _check_crcs(shard: Shard, framed: bytes) -> None:
    """Raise where the first records of `shard` (`framed`: as TFRecord, uncompressed) fail
    their CRC: tf.data checks them, from a temporary copy of these bytes."""
    with tempfile.TemporaryDirectory(prefix="flatline-tfrecord-") as tmp:
        path = os.path.join(tmp, "prefix.tfrecord")
        with open(path, "wb") as out:
            out.write(framed)
        error = _corrupt(Shard(shard.location, len(framed), ""), path, 0)
    if "DataLossError:" in str(error):
        raise error


class _Copies(contextlib.AbstractContextManager):
    """A local path for each shard read: itself when local, else a temporary copy (streamed
    in chunks, so memory stays at one chunk), kept until the read ends: TensorFlow 2.21 reads
    no s3:// or gs:// itself (that is tensorflow-io)."""

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._paths: dict[str, str] = {}

    def path(self, shard: Shard) -> str:
        if locations.is_local(shard.location):
            return shard.location.removeprefix("file://")
        if shard.location not in self._paths:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="flatline-tfrecord-")
            target = os.path.join(self._tmp.name, f"{len(self._paths):05d}")
            try:
                fs, path = locations.filesystem(shard.location)
                with fs.open_input_stream(path, compression=None) as src, \
                        open(target, "wb") as dst:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
            except (OSError, ValueError) as exc:
                raise locations.LocationError(f"{shard.location}: cannot read "
                                              f"({one_line(exc)})") from None
            self._paths[shard.location] = target
        return self._paths[shard.location]

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
