"""Typed named inputs: matching columns to a model's inputs, kinds, layouts, heads, exports, big
tables, and a one-line error for each way the data cannot feed the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.engine import audit_case
from audit.manifest.case import Budget, CaseSpec
from audit.subject import SubjectError, load_subject

CITIES = ["paris", "lyon", "nice"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A four-input model (numeric with Normalization, string with StringLookup, tokens into an
    Embedding, an 4x4 image) with a second head, saved as .keras and exported; and its data as
    Parquet (string, dictionary, bool, list and fixed_size_list columns), CSV and .npz."""
    import keras

    folder = tmp_path_factory.mktemp("inputs")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = 120
    age = rng.uniform(20, 70, n)
    city = rng.choice(CITIES, n)
    tokens = rng.integers(1, 20, (n, 6))
    image = rng.uniform(0, 1, (n, 4, 4, 1)).astype(np.float32)
    vip = rng.random(n) < 0.3
    y = ((age > 45) ^ (city == "lyon")).astype(np.int64)
    spend = (age / 10 + vip).astype(np.float32)

    a = keras.Input((1,), name="age")
    c = keras.Input((1,), name="city", dtype="string")
    t = keras.Input((6,), name="tokens", dtype="int32")
    i = keras.Input((4, 4, 1), name="image")
    norm = keras.layers.Normalization(name="age_norm")
    norm.adapt(age.reshape(-1, 1))
    lookup = keras.layers.StringLookup(output_mode="one_hot", name="city_lookup")
    lookup.adapt(np.array(CITIES))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 3)(t))
    conv = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, activation="relu")(i))
    trunk = keras.layers.Dense(8, activation="relu")(
        keras.layers.Concatenate()([norm(a), lookup(c), pooled, conv]))
    churn = keras.layers.Dense(1, activation="sigmoid", name="churn")(trunk)
    value = keras.layers.Dense(1, name="spend")(trunk)
    model = keras.Model({"age": a, "city": c, "tokens": t, "image": i},
                        {"churn": churn, "spend": value})
    model.compile("adam", {"churn": "binary_crossentropy", "spend": "mse"})
    paths = {"model": folder / "m.keras", "export": folder / "m_export"}
    model.save(paths["model"])
    model.export(str(paths["export"]), verbose=False)

    paths["parquet"] = folder / "d.parquet"
    pq.write_table(pa.table({
        "age": age,
        "city": pa.array(city.tolist()).dictionary_encode(),
        "tokens": pa.array(tokens.tolist(), type=pa.list_(pa.int64())),
        "image": pa.FixedSizeListArray.from_arrays(pa.array(image.reshape(-1)), 16),
        "vip": pa.array(vip.tolist()),
        "churn": y,
        "spend": spend,
    }), paths["parquet"])
    paths["npz"] = folder / "d.npz"
    np.savez(paths["npz"], age=age, city=city, tokens=tokens, image=image, churn=y)
    paths["ragged"] = folder / "ragged.parquet"
    ragged = [list(row[: 3 + k % 3]) for k, row in enumerate(tokens.tolist())]
    pq.write_table(pa.table({"age": age, "city": city.tolist(), "tokens": ragged,
                             "image": pa.FixedSizeListArray.from_arrays(
                                 pa.array(image.reshape(-1)), 16), "churn": y}),
                   paths["ragged"])
    paths["text_age"] = folder / "text_age.parquet"
    pq.write_table(pa.table({"age": [f"about {v:.0f}" for v in age], "city": city.tolist(),
                             "tokens": pa.array(tokens.tolist(), type=pa.list_(pa.int64())),
                             "image": pa.FixedSizeListArray.from_arrays(
                                 pa.array(image.reshape(-1)), 16), "churn": y}),
                   paths["text_age"])
    return paths


def spec(model: Path, data: Path, **kw: object) -> CaseSpec:
    return CaseSpec(name="t", model=str(model), data=str(data), **kw)


def test_columns_feed_inputs_by_name_with_kinds_and_shapes(files: dict) -> None:
    s = load_subject(spec(files["model"], files["parquet"], label="churn"))
    kinds = {a.name: (a.kind, a.values.shape[1:], a.normalized) for a in s.inputs.arrays}
    assert kinds == {"age": ("numeric", (1,), True), "city": ("categorical", (1,), True),
                     "tokens": ("tokens", (6,), False), "image": ("tensor", (4, 4, 1), False)}
    assert s.inputs["city"].values[0, 0] in CITIES  # a dictionary column decodes to strings
    # one feature per named input: never one token position or pixel
    assert sorted(f.name for f in s.inputs.features) == ["age", "city", "image", "tokens"]
    assert s.output_name == "churn" and s.task == "binary"
    assert s.training.loss == "binary_crossentropy"  # the audited head's own loss


def test_the_second_head_is_audited_when_named(files: dict) -> None:
    s = load_subject(spec(files["model"], files["parquet"], label="spend", output="spend"))
    assert (s.output_name, s.task, s.training.loss) == ("spend", "regression", "mse")
    assert len(s.model.outputs) == 1
    with pytest.raises(SubjectError, match=r"output 'nope' not found; outputs are \['churn', "):
        load_subject(spec(files["model"], files["parquet"], label="churn", output="nope"))


def test_npz_holds_one_array_per_input(files: dict) -> None:
    s = load_subject(spec(files["model"], files["npz"], label="churn"))
    assert s.inputs["image"].values.shape == (120, 4, 4, 1)
    assert s.inputs["tokens"].values.dtype == np.int32


def test_a_mapped_column_feeds_an_input_of_another_name(files: dict) -> None:
    s = load_subject(spec(files["model"], files["parquet"], label="churn",
                          inputs={"age": "spend"}))
    assert s.inputs["age"].columns == ("spend",)
    np.testing.assert_allclose(s.inputs["age"].values[:, 0],
                               pq.read_table(files["parquet"])["spend"].to_numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        ("parquet", {"inputs": {"age": "missing"}},
         "model input 'age' reads column(s) ['missing'] not found; columns are ['age', 'city'"),
        ("parquet", {"inputs": {"agee": "age"}}, "inputs: ['agee'] are not inputs of model"),
        ("parquet", {"inputs": {"image": "tokens"}},
         "model input 'image' (tensor, float32, shape (None, 4, 4, 1)) from ['tokens'] expects "
         "rows of shape (4, 4, 1) but the data gives (6,)"),
        ("ragged", {}, "column 'tokens' holds lists of different lengths (3..5)"),
        ("text_age", {}, "column 'age' holds text (e.g. 'about "),
    ],
)
def test_data_that_cannot_feed_an_input_is_a_one_line_error(files: dict, data: str,
                                                             kwargs: dict, expected: str) -> None:
    report = audit_case(spec(files["model"], files[data], label="churn", **kwargs))
    assert report.status == "error" and report.verdict == "error"
    assert expected in report.error and "\n" not in report.error
    assert str(files[data]) in report.error


def test_an_input_without_a_column_says_how_to_map_it(files: dict, tmp_path: Path) -> None:
    path = tmp_path / "no_city.parquet"
    table = pq.read_table(files["parquet"]).drop_columns(["city"])
    pq.write_table(table, path)
    with pytest.raises(SubjectError) as err:
        load_subject(spec(files["model"], path, label="churn"))
    assert "model input 'city' (categorical, shape (None, 1)) has no column of that name" in str(
        err.value)
    assert "inputs: {city: COLUMN}" in str(err.value)


def test_too_few_rows_is_an_error_not_a_verdict(files: dict, tmp_path: Path) -> None:
    path = tmp_path / "tiny.parquet"
    pq.write_table(pq.read_table(files["parquet"]).slice(0, 5), path)
    report = audit_case(spec(files["model"], path, label="churn"))
    assert report.status == "error"
    assert "5 usable row(s) (finite inputs and label) of 5; an audit needs at least 20" in (
        report.error)


def test_an_export_with_named_inputs_runs_the_inference_probes(files: dict) -> None:
    report = audit_case(spec(files["export"], files["parquet"], label="churn",
                             output="churn"))
    assert report.status == "ok", report.error
    assert report.output == "churn"
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses["sensitivity"] == "ok" and statuses["data"] == "ok"
    assert statuses["retrain"] == "not_applicable"
    metrics = {(m.probe, m.metric): m.value for m in report.metrics}
    assert metrics[("sensitivity", "features_swept")] == 4
    # the export hides what it does with its inputs: their scale is not judged
    assert metrics[("data", "inputs_of_unseen_scaling")] == 2  # age and image


def test_every_probe_runs_on_every_kind(files: dict) -> None:
    report = audit_case(spec(files["model"], files["parquet"], label="churn",
                             budget=Budget(epochs=2, seeds=1)))
    assert report.status == "ok", report.error
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses == {p: "ok" for p in statuses}, statuses
    metrics = {(m.probe, m.metric): m.value for m in report.metrics}
    assert metrics[("data", "cardinality.city")] == 3
    assert metrics[("data", "unknown_category_fraction.city")] == 0
    assert metrics[("data", "token_out_of_range_fraction.tokens")] == 0
    assert 0 <= metrics[("data", "value_min.image")] < metrics[("data", "value_max.image")] <= 1
    assert ("sensitivity", "response_occlusion") in metrics
    assert ("gradients", "grad_norm.embedding") in metrics  # a sparse gradient, densified


def test_unknown_categories_and_out_of_range_tokens_are_measured(files: dict,
                                                                 tmp_path: Path) -> None:
    table = pq.read_table(files["parquet"])
    cities = ["rome" if k % 4 == 0 else c for k, c in enumerate(table["city"].to_pylist())]
    tokens = [[99, *row[1:]] if k % 2 == 0 else row
              for k, row in enumerate(table["tokens"].to_pylist())]
    path = tmp_path / "drift.parquet"
    pq.write_table(table.set_column(1, "city", pa.array(cities)).set_column(
        2, "tokens", pa.array(tokens)), path)
    report = audit_case(spec(files["model"], path, label="churn", probes=("data",)))
    metrics = {(m.probe, m.metric): m.value for m in report.metrics}
    assert metrics[("data", "unknown_category_fraction.city")] == pytest.approx(0.25)
    assert metrics[("data", "token_out_of_range_fraction.tokens")] == pytest.approx(0.5 / 6)


def test_a_big_parquet_table_is_sampled_by_row_groups(tmp_path: Path) -> None:
    """1.2M rows in row groups: the audit reads a seeded sample of `budget.max_rows` rows and
    records how many the file holds."""
    import keras

    rows, groups = 1_200_000, 12
    path = tmp_path / "big.parquet"
    writer = None
    for g in range(groups):
        rng = np.random.default_rng(g)
        x = rng.normal(size=(rows // groups, 3))
        part = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "y": x @ np.array([1.0, -2.0, 0.5])})
        writer = writer or pq.ParquetWriter(path, part.schema)
        writer.write_table(part)
    writer.close()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    case = CaseSpec(name="big", model=str(tmp_path / "m.keras"), data=str(path), label="y",
                    probes=("data", "config", "sensitivity"), budget=Budget(max_rows=5000))
    subject = load_subject(case)
    assert len(subject.inputs) == 5000 and subject.rows_in_file == rows
    again = load_subject(case)
    np.testing.assert_allclose(again.inputs.feed(), subject.inputs.feed())  # seeded
    first = pq.read_table(path, columns=["a"]).column(0).to_numpy()
    # a uniform sample: rows come from every row group, not from the first one only
    positions = np.flatnonzero(np.isin(first.astype(np.float32), subject.inputs.feed()[:, 0]))
    assert positions.max() > rows * 0.9 and positions.min() < rows * 0.1
    report = audit_case(case)
    metrics = {(m.probe, m.metric): m.value for m in report.metrics}
    assert metrics[("data", "rows")] == 5000 and metrics[("data", "rows_in_file")] == rows


def test_probes_work_per_layer_on_recurrent_and_attention_layers(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(1)
    tokens = keras.Input((8,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(30, 8)(tokens)
    attended = keras.layers.MultiHeadAttention(2, 4, name="attention")(embedded, embedded)
    recurrent = keras.layers.GRU(4, name="gru")(attended)
    model = keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid")(recurrent))
    model.compile("adam", "binary_crossentropy")
    model.save(tmp_path / "attn.keras")
    rng = np.random.default_rng(1)
    x = rng.integers(1, 30, (64, 8))
    np.savez(tmp_path / "d.npz", tokens=x, y=(x[:, 0] > 15).astype(np.int64))
    report = audit_case(CaseSpec(name="attn", model=str(tmp_path / "attn.keras"),
                                 data=str(tmp_path / "d.npz"),
                                 probes=("data", "sensitivity", "activations", "gradients")))
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses == dict.fromkeys(statuses, "ok"), report.metrics
    metrics = {(m.probe, m.metric) for m in report.metrics}
    assert {("gradients", "grad_norm.attention"), ("gradients", "grad_norm.gru")} <= metrics
