"""TFRecord files of tf.Example as a case's data: one file, a folder or a glob of shards, plain,
GZIP or ZLIB, local or in a bucket, read into the same columns Parquet gives for the same rows;
the feature spec from a TFX schema, the model's inputs or the first records; big datasets
sampled by seeded blocks; and every kind of bad input one line naming the file and the record.

Everything is real: the files are written by TensorFlow, the schemas with tensorflow-metadata's
protos, the bucket is a moto S3 server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import moto_server

from audit.engine import audit_case
from audit.io import tfrecord_plan
from audit.io.tables import DataOptions, column_names, read_table
from audit.manifest.case import CaseSpec, DataFormat
from audit.subject import SubjectError, load_subject
from audit.zoo.tfrecords import write_tfrecords

ROWS = 300


def _columns() -> dict[str, np.ndarray]:
    """Every layout a column can have: floats with NaN, ints, strings with gaps, fixed and
    ragged lists."""
    rng = np.random.default_rng(0)
    ragged = np.empty(ROWS, dtype=object)
    ragged[:] = [list(rng.integers(0, 9, size=1 + i % 3)) for i in range(ROWS)]
    strings = np.array(rng.choice(["paris", "lyon", "nice"], ROWS), dtype=object)
    strings[::7] = None
    floats = rng.normal(size=ROWS).astype(np.float32)
    floats[::11] = np.nan
    return {"f": floats, "i": rng.integers(-5, 5, ROWS), "s": strings,
            "seq": rng.integers(0, 50, size=(ROWS, 4)), "rag": ragged,
            "y": rng.normal(size=ROWS).astype(np.float32)}


def _parquet(columns: dict[str, np.ndarray], path: Path) -> Path:
    arrays = {k: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
              if v.ndim == 2 else pa.array(list(v) if v.dtype == object else v,
                                           from_pandas=True)
              for k, v in columns.items()}
    pq.write_table(pa.table(arrays), path)
    return path


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return a.shape == b.shape and all(
            (x is None and y is None) or list(np.atleast_1d(x)) == list(np.atleast_1d(y))
            for x, y in zip(a, b, strict=True))
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)  # exact: values read back


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Values read back from files on both sides: exact, no arithmetic between them."""
    return bool(np.array_equal(a, b))  # exact: values read back


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("tfrecord")
    columns = _columns()
    out: dict[str, Any] = {"columns": columns,
                           "parquet": str(_parquet(columns, folder / "rows.parquet"))}
    write_tfrecords(columns, folder / "one", "eval", 1, "")
    out["one file"] = str(folder / "one" / "eval-00000-of-00001.tfrecord")
    write_tfrecords(columns, folder / "gzip", "eval", 4, "GZIP")
    out["folder of gzip shards"] = str(folder / "gzip")
    write_tfrecords(columns, folder / "zlib", "eval", 3, "ZLIB")
    out["glob of zlib shards"] = str(folder / "zlib" / "eval-*.tfrecord.zlib")
    plain = folder / "named" / "part-0"  # a suffix that says nothing: data_format says GZIP
    plain.parent.mkdir()
    (folder / "gzip" / "eval-00000-of-00004.tfrecord.gz").rename(plain)
    write_tfrecords(columns, folder / "gzip", "eval", 4, "GZIP")
    out["data_format"] = str(plain)
    return out


@pytest.mark.parametrize("layout", ["one file", "folder of gzip shards", "glob of zlib shards"])
def test_shards_read_as_the_parquet_of_the_same_rows(data: dict, layout: str) -> None:
    expected = read_table(data["parquet"])
    assert column_names(data[layout]) == ["f", "i", "rag", "s", "seq", "y"]  # natural order
    table = read_table(data[layout])
    assert table.rows_in_file == ROWS and not table.rows_in_file_estimated
    for name, values in expected.columns.items():
        assert _same(table.columns[name], values), name
    # a sample: the same seeded rows Parquet's sample holds
    sampled, reference = read_table(data[layout], ["f", "s", "seq"], 50, 7), read_table(
        data["parquet"], ["f", "s", "seq"], 50, 7)
    assert sampled.rows == 50 and sampled.rows_in_file == ROWS
    assert all(_same(sampled.columns[c], reference.columns[c]) for c in ("f", "s", "seq"))


def test_data_format_names_tfrecord_and_its_compression(data: dict) -> None:
    location = data["data_format"]
    with pytest.raises(Exception, match="unsupported data format"):
        read_table(location)
    table = read_table(location, ["i", "y"], options=DataOptions("tfrecord", "GZIP"))
    assert table.rows == 75 and _equal(table.columns["i"], data["columns"]["i"][:75])


# ---------------------------------------------------------------- schema.pbtxt


def _schema(path: Path, features: list[tuple[str, str, dict[str, Any]]]) -> str:
    """A schema.pbtxt as TFDV writes it: the Schema proto in text format."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for name, kind, extra in features:
        feature = schema.feature.add(name=name, type=schema_pb2.FeatureType.Value(kind))
        for size in extra.get("shape", []):
            feature.shape.dim.add(size=size)
        if extra.get("image"):
            feature.image_domain.SetInParent()
    path.write_text(text_format.MessageToString(schema))
    return str(path)


def _examples(path: Path, rows: list[dict[str, Any]], compression: str = "") -> str:
    """TFRecord of hand-made tf.Examples: {name: list of floats | ints | bytes}."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), compression or None) as writer:
        for row in rows:
            feature = {}
            for name, values in row.items():
                if isinstance(values[0], bytes):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
                elif isinstance(values[0], int):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    return str(path)


def test_a_schema_gives_the_columns_their_order_and_shape(tmp_path: Path) -> None:
    rows = [{"zeta": [float(i)], "grid": [float(i)] * 4, "label": [i % 2]} for i in range(30)]
    data = _examples(tmp_path / "d.tfrecord", rows)
    schema = _schema(tmp_path / "schema.pbtxt", [("zeta", "FLOAT", {}), ("label", "INT", {}),
                                                 ("grid", "FLOAT", {"shape": [2, 2]})])
    options = DataOptions(schema=schema)
    assert column_names(data, options) == ["zeta", "label", "grid"]  # the schema's order
    table = read_table(data, options=options)
    assert table.columns["grid"].shape == (30, 2, 2) and table.columns["label"].dtype == np.int64


def tiny_keras(folder: Path) -> str:
    """A 3-feature regression model (one input reading every non-label column)."""
    import keras

    keras.utils.set_random_seed(0)
    # every layer named: Keras' automatic names count up across the session, and other
    # modules' tests read theirs (`grad_norm.embedding`)
    model = keras.Sequential([keras.Input((3,), name="features"),
                              keras.layers.Dense(4, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")], name="tiny")
    model.compile(optimizer="sgd", loss="mse")
    model.save(folder / "tiny.keras")
    return str(folder / "tiny.keras")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_keras(tmp_path_factory.mktemp("model"))


def _rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"a": [float(rng.normal())], "b": [float(rng.normal())], "c": [float(rng.normal())],
             "y": [float(rng.normal())]} for _ in range(n)]


def bad_inputs(folder: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Each kind of bad TFRecord input, as case fields and the exact one-line error
    (tests/test_fleet.py runs them as a fleet)."""
    out: dict[str, tuple[dict[str, Any], str]] = {}
    # a corrupt record: one byte of record 40's data flipped in an uncompressed shard
    path = Path(_examples(folder / "corrupt.tfrecord", _rows(100)))
    raw = bytearray(path.read_bytes())
    record = len(raw) // 100
    raw[40 * record + 20] ^= 0xFF
    path.write_bytes(bytes(raw))
    out["corrupt"] = ({"data": str(path)}, f"{path}: record 40: corrupt (DataLossError: "
                      f"corrupted record at {40 * record + 12})")  # its data, after length and CRC
    # a record without the label
    rows = _rows(60)
    del rows[33]["y"]
    path = Path(_examples(folder / "nolabel.tfrecord.gz", rows, "GZIP"))
    out["no label"] = ({"data": str(path)}, f"{path}: record 33: no label 'y' (the feature is "
                       "missing or empty)")
    # a feature whose type disagrees with the schema, deep in the fourth shard
    shards = folder / "typed"
    shards.mkdir()
    for i in range(4):
        rows = _rows(1300, seed=i)
        if i == 3:
            rows[1207]["a"] = [b"forty-two"]
        _examples(shards / f"eval-{i:05d}-of-00004.tfrecord.gz", rows, "GZIP")
    schema = _schema(folder / "schema.pbtxt", [(c, "FLOAT", {}) for c in "abcy"])
    out["type vs schema"] = (
        {"data": str(shards / "eval-*.tfrecord.gz"), "data_schema": schema},
        f"{shards}/eval-00003-of-00004.tfrecord.gz: record 1207: feature 'a' is a bytes_list; "
        "the schema says FLOAT")
    # a feature whose type disagrees with the model's input
    rows = _rows(40)
    for row in rows:
        row["b"] = [b"text"]
    path = Path(_examples(folder / "textual.tfrecord", rows))
    out["type vs input"] = ({"data": str(path)}, f"{path}: record 0: feature 'b' is a "
                            "bytes_list; model input 'features' (numeric, float32, shape "
                            "(None, 3)) expects a float_list or int64_list")
    # two kinds of one feature in the first records, both numbers: one column parses as one
    rows = _rows(40)
    rows[3]["a"] = [3]
    path = Path(_examples(folder / "mixed.tfrecord", rows))
    out["mixed kinds"] = ({"data": str(path)}, f"{path}: record 3: feature 'a' is an "
                          "int64_list; record 0 holds a float_list")
    # a schema that does not parse
    broken = folder / "broken.pbtxt"
    broken.write_text("feature { name: 'a' type: FLOATY }\n")
    out["bad schema"] = ({"data": str(shards / "eval-*.tfrecord.gz"),
                          "data_schema": str(broken)},
                         f"{broken}: not a TFX schema (schema.pbtxt, tensorflow_metadata Schema): "
                         "1:27 : 'feature { name: 'a' type: FLOATY }': Enum type \"tensorflow."
                         "metadata.v0.FeatureType\" has no value named FLOATY.")
    # no file matching the glob
    out["no match"] = ({"data": str(folder / "eval-*.tfrecord.gz")},
                       f"{folder}/eval-*.tfrecord.gz: no file matches the glob")
    return out


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], str]]:
    return bad_inputs(tmp_path_factory.mktemp("bad"))


BAD_KINDS = ["corrupt", "no label", "type vs schema", "type vs input", "mixed kinds",
             "bad schema", "no match"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_is_one_error_line_naming_the_file_and_record(
        bad: dict, tiny_model: str, kind: str) -> None:
    fields, expected = bad[kind]
    report = audit_case(CaseSpec(name=kind, model=tiny_model, label="y", probes=("data",),
                                 **fields))
    assert (report.status, report.verdict) == ("error", "error")
    assert report.error == expected


def test_a_good_shard_set_audits_and_keeps_its_glob(tmp_path: Path, tiny_model: str) -> None:
    for i in range(2):
        _examples(tmp_path / f"eval-{i:05d}-of-00002.tfrecord.gz", _rows(50, i), "GZIP")
    glob = str(tmp_path / "eval-*.tfrecord.gz")
    report = audit_case(CaseSpec(name="ok", model=tiny_model, data=glob, label="y",
                                 probes=("data", "config")))
    assert report.status == "ok" and report.data == glob
    metrics = {m.metric: m.value for m in report.metrics if m.probe == "data"}
    assert metrics["rows_in_file"] == 100 and "rows_in_file_estimated" not in metrics


# ---------------------------------------------------------------- images


def test_encoded_images_feed_an_image_input_as_the_pixels_would(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="pixels"),
                              keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(2, activation="softmax", name="head")],
                             name="cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(tmp_path / "cnn.keras")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 8, 8, 1)).astype(np.uint8)
    labels = np.arange(40) % 2
    rows = [{"pixels": [tf.io.encode_png(image).numpy()], "label": [int(k)]}
            for image, k in zip(images, labels, strict=True)]
    data = _examples(tmp_path / "img.tfrecord.gz", rows, "GZIP")
    _parquet({"pixels": images.reshape(40, -1).astype(np.float32), "label": labels},
             tmp_path / "img.parquet")
    from_png = load_subject(CaseSpec(name="img", model=str(tmp_path / "cnn.keras"), data=data))
    from_lists = load_subject(CaseSpec(name="img", model=str(tmp_path / "cnn.keras"),
                                       data=str(tmp_path / "img.parquet")))
    assert from_png.inputs["pixels"].kind == "tensor"
    assert _equal(from_png.inputs["pixels"].values, images.astype(np.float32))
    assert _equal(from_png.inputs["pixels"].values, from_lists.inputs["pixels"].values)
    assert _equal(from_png.y, from_lists.y) and from_png.task == from_lists.task


# ---------------------------------------------------------------- big datasets


def test_a_big_dataset_is_sampled_by_seeded_blocks(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """16 shards of 2,000 records each, counted as big (the byte threshold set to 0): a
    sample of 1,000 is contiguous blocks from at most 8 shards, the same for the same seed,
    other blocks for another, and the size is an estimate within 10%."""
    ids = np.arange(32_000)
    write_tfrecords({"id": ids, "x": ids.astype(np.float32) / 7, "y": ids % 3}, tmp_path,
                    "eval", 16, "GZIP")
    monkeypatch.setattr(tfrecord_plan, "EXACT_BYTES", 0)
    first = read_table(str(tmp_path), ["id", "x"], 1000, seed=0)
    again = read_table(str(tmp_path), ["id", "x"], 1000, seed=0)
    other = read_table(str(tmp_path), ["id", "x"], 1000, seed=1)
    got = first.columns["id"]
    assert first.rows == 1000 and _equal(got, again.columns["id"])
    assert not np.array_equal(got, other.columns["id"])  # exact: values read back
    assert _equal(first.columns["x"], (got.astype(np.float32) / 7).astype(np.float64))
    shards = got // 2000
    assert len(set(shards)) <= tfrecord_plan.MAX_SHARDS_SAMPLED
    for shard in set(shards):
        block = got[shards == shard]
        assert np.all(np.diff(block) == 1)  # contiguous within a shard
    assert first.rows_in_file_estimated
    assert abs(first.rows_in_file - 32_000) < 3_200, first.rows_in_file


# ---------------------------------------------------------------- in a bucket


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("moto")
    with moto_server(folder, "tfr") as port:
        yield f"127.0.0.1:{port}"


def test_shards_in_a_bucket_read_as_local_ones(bucket: str, data: dict,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.fs as pafs

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    s3 = pafs.S3FileSystem(endpoint_override=bucket, scheme="http", region="us-east-1")
    for shard in sorted(Path(data["folder of gzip shards"]).iterdir()):
        with s3.open_output_stream(f"tfr/eval/{shard.name}", compression=None) as out:
            out.write(shard.read_bytes())
    query = f"?endpoint_override={bucket}&scheme=http&region=us-east-1"
    local = read_table(data["folder of gzip shards"], ["f", "s", "rag"], 100, 3)
    for location in (f"s3://tfr/eval/eval-*.tfrecord.gz{query}", f"s3://tfr/eval{query}"):
        remote = read_table(location, ["f", "s", "rag"], 100, 3)
        assert remote.rows_in_file == ROWS
        assert all(_same(remote.columns[c], local.columns[c]) for c in ("f", "s", "rag"))


def test_a_sequence_input_takes_lists_as_parquet_list_columns_do(data: dict,
                                                                 tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,), dtype="int32", name="seq"),
                              keras.layers.Embedding(50, 2, name="embed"),
                              keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(1, name="head")], name="seq_model")
    model.compile("adam", "mse")
    model.save(tmp_path / "seq.keras")
    fields = {"name": "seq", "model": str(tmp_path / "seq.keras"), "label": "y",
              "features": ("seq",)}
    ours = load_subject(CaseSpec(**fields, data=data["glob of zlib shards"]))
    theirs = load_subject(CaseSpec(**fields, data=data["parquet"]))
    assert ours.inputs["seq"].kind == "tokens"
    assert _equal(ours.inputs["seq"].values, theirs.inputs["seq"].values)
    ragged = CaseSpec(**{**fields, "features": ("rag",)}, data=data["glob of zlib shards"])
    with pytest.raises(SubjectError, match="holds lists of different lengths"):
        load_subject(ragged)


def test_data_format_reaches_the_reader_from_the_case(data: dict, tiny_model: str) -> None:
    spec = CaseSpec(name="fmt", model=tiny_model, data=data["data_format"], label="y",
                    features=("f", "i", "seq"), data_format=DataFormat(type="tfrecord",
                                                                       compression="gzip"))
    with pytest.raises(SubjectError, match="unsupported data format"):
        load_subject(spec.model_copy(update={"data_format": None}))
    subject = load_subject(spec.model_copy(update={"features": ("f", "i", "y")}))
    assert subject.rows_in_file == 75 and subject.feature_names == ["f", "i", "y"]


# ---------------------------------------------------------------- the manifest and case ids


def test_the_manifest_takes_schema_and_data_format_and_ids_follow_the_shards(
        tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from audit.errors import ManifestError
    from audit.manifest.schema import parse_manifest

    monkeypatch.setenv("FLATLINE_DIGEST_CACHE", "off")  # ids from hashing alone
    for i in range(2):
        _examples(tmp_path / f"eval-{i:05d}-of-00002.tfrecord.gz", _rows(30, i), "GZIP")
    schema = _schema(tmp_path / "schema.pbtxt", [(c, "FLOAT", {}) for c in "abcy"])
    case = {"model": tiny_model, "data": "eval-*.tfrecord.gz", "label": "y"}

    def spec(**extra: Any) -> CaseSpec:
        doc = {"name": "m", "cases": [{**case, **extra}]}
        return parse_manifest(doc, base_dir=str(tmp_path)).cases()[0]

    plain = spec()
    typed = spec(schema="schema.pbtxt", data_format={"type": "tfrecord", "compression": "gzip"})
    assert typed.data_schema == schema and typed.data_format == DataFormat(
        type="tfrecord", compression="GZIP")
    assert plain.data == str(tmp_path / "eval-*.tfrecord.gz")  # the glob, as written
    assert len({plain.case_id, typed.case_id}) == 2
    assert spec().case_id == plain.case_id  # unchanged shards: the same id
    shard = tmp_path / "eval-00001-of-00002.tfrecord.gz"
    _examples(shard, _rows(30, 7), "GZIP")
    os.utime(shard, ns=(1, 1))
    assert spec().case_id != plain.case_id  # one shard changed: a new id
    with pytest.raises(ManifestError, match=r"cases\[0\]\.data_format\.compression"):
        spec(data_format={"type": "tfrecord", "compression": "lz4"})
    with pytest.raises(ManifestError, match="did you mean 'schema'"):
        spec(shema="schema.pbtxt")
