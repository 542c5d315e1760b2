"""Keras 2 models (saved by `tf_keras`) rebuilt in Keras 3: same predictions, same compile config,
every probe retraining included; a model that does not rebuild keeps the inference probes and
says why in one line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.engine import audit_case
from audit.manifest.case import CaseSpec
from audit.models import keras2
from audit.models.load import MODEL_FORMATS, ModelError, load_model
from audit.reports.columns import case_tables
from audit.subject import load_subject
from audit.zoo import audit_zoo, build_zoo

#: loading code is imported; tf_keras is not until a Keras 2 model is met (no test has run yet
#: when pytest imports this module)
TF_KERAS_AT_IMPORT = "tf_keras" in sys.modules
ROWS = 96
CITIES = ["paris", "lyon", "nice"]


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 3)).astype(np.float32) * [1.0, 5.0, 100.0]
    b = rng.normal(size=(ROWS, 2)).astype(np.float32)
    city = rng.choice(CITIES, ROWS)
    y = (x[:, 0] + b[:, 0] + (city == "nice") > 0.5).astype(np.int64)
    return {"x": x.astype(np.float32), "b": b, "city": city, "y": y}


def _mlp(tf_keras: Any, d: dict) -> Any:
    """A plain Dense MLP under SGD at a rate far too low."""
    model = tf_keras.Sequential([tf_keras.Input((3,)),
                                 tf_keras.layers.Dense(8, activation="relu"),
                                 tf_keras.layers.Dense(1)])
    model.compile(optimizer=tf_keras.optimizers.SGD(1e-6, momentum=0.5), loss="mse")
    model.fit(d["x"], d["y"].astype(np.float32), epochs=1, verbose=0)
    return model


def _normalized(tf_keras: Any, d: dict) -> Any:
    """Normalization (adapted), BatchNormalization, LeakyReLU and Dropout: the layers whose
    configs or weights Keras 2 and 3 spell differently."""
    layers = tf_keras.layers
    norm = layers.Normalization()
    norm.adapt(d["x"])
    model = tf_keras.Sequential([tf_keras.Input((3,)), norm, layers.Dense(8),
                                 layers.LeakyReLU(0.2), layers.BatchNormalization(),
                                 layers.Dropout(0.3), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=tf_keras.optimizers.Adam(0.003), loss="binary_crossentropy",
                  metrics=["accuracy", tf_keras.metrics.AUC(name="auc")])
    model.fit(d["x"], d["y"], epochs=2, verbose=0)
    return model


def _functional(tf_keras: Any, d: dict) -> Any:
    """Three named inputs (a string one through StringLookup) and two heads."""
    layers = tf_keras.layers
    x_in = tf_keras.Input((3,), name="x")
    b_in = tf_keras.Input((2,), name="b")
    city_in = tf_keras.Input((1,), name="city", dtype="string")
    lookup = layers.StringLookup(output_mode="one_hot")
    lookup.adapt(d["city"])
    h = layers.Concatenate()([layers.BatchNormalization()(x_in), b_in, lookup(city_in)])
    h = layers.Dense(8, activation="tanh")(h)
    score = layers.Dense(1, name="score")(h)
    risk = layers.Dense(1, activation="sigmoid", name="risk")(h)
    model = tf_keras.Model([x_in, b_in, city_in], [score, risk])
    model.compile(optimizer=tf_keras.optimizers.RMSprop(0.002),
                  loss={"score": "mse",
                        "risk": tf_keras.losses.BinaryCrossentropy(label_smoothing=0.1)})
    import tensorflow as tf

    model.fit({"x": d["x"], "b": d["b"], "city": tf.constant(d["city"][:, None])},
              {"score": d["x"][:, 0], "risk": d["y"].astype(np.float32)}, epochs=2, verbose=0)
    return model


def _sequence(tf_keras: Any, d: dict) -> Any:
    """Token ids through Embedding and a TimeDistributed Dense into a nested Sequential head:
    a wrapped layer's config and a nested model's node numbering differ in Keras 3 (an RNN
    converts too, but its SavedModel costs seconds to write and read)."""
    layers = tf_keras.layers
    tokens = tf_keras.Input((3,), name="tokens")
    h = layers.Embedding(8, 4, mask_zero=True)(tokens)
    h = layers.GlobalAveragePooling1D()(layers.TimeDistributed(layers.Dense(4))(h))
    head = tf_keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(1)],
                               name="head")
    model = tf_keras.Model(tokens, head(h))
    model.compile(optimizer="adam", loss="mse")
    model.fit(_tokens(d), d["y"].astype(np.float32), epochs=1, verbose=0)
    return model


def _tokens(d: dict) -> np.ndarray:
    return (np.abs(d["x"]).astype(np.int64) % 7 + 1).astype(np.float32)


BUILDERS = {"mlp": _mlp, "normalized": _normalized, "functional": _functional,
            "sequence": _sequence}
#: every model as a SavedModel, the plain ones as .h5 too (a lookup table cannot be one)
SAVED = [(name, fmt) for name in BUILDERS for fmt in ("savedmodel", "h5")
         if fmt == "savedmodel" or name in ("mlp", "normalized")]


def _feed(name: str, d: dict) -> Any:
    if name == "functional":
        return {"x": d["x"], "b": d["b"], "city": d["city"][:, None].astype(object)}
    return _tokens(d) if name == "sequence" else d["x"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each model built and trained by tf_keras, saved as a SavedModel folder and as .h5, with
    its data as Parquet."""
    import tf_keras

    folder = tmp_path_factory.mktemp("keras2")
    d = _data()
    out: dict[str, Any] = {"data": d, "models": {}}
    for name, build in BUILDERS.items():
        tf_keras.utils.set_random_seed(0)
        model = build(tf_keras, d)
        for fmt in ("savedmodel", "h5"):
            if (name, fmt) in SAVED:
                model.save(str(folder / f"{name}.{fmt}"), save_format=fmt.replace("savedmodel",
                                                                                  "tf"))
        out["models"][name] = model
    columns = {**{f"x{i}": d["x"][:, i] for i in range(3)},
               **{f"b{i}": d["b"][:, i] for i in range(2)}, "city": d["city"], "y": d["y"]}
    pq.write_table(pa.table(columns), folder / "data.parquet")
    out["folder"] = folder
    return out


def test_tf_keras_is_imported_by_name_beside_keras_3(saved: dict) -> None:
    """`import tf_keras` gives Keras 2 while `keras` and `tf.keras` stay Keras 3 in the same
    process (no TF_USE_LEGACY_KERAS), and importing the loader does not import tf_keras."""
    import keras
    import tensorflow as tf
    import tf_keras

    assert not TF_KERAS_AT_IMPORT and "TF_USE_LEGACY_KERAS" not in os.environ
    assert keras.__version__.startswith("3.") and tf.keras.__version__ == keras.__version__
    assert tf_keras.__version__.startswith("2.")
    assert tf.keras.layers.Dense is keras.layers.Dense
    assert not isinstance(saved["models"]["mlp"], keras.Model)


@pytest.mark.parametrize(("name", "fmt"), SAVED)
def test_a_keras_2_model_is_rebuilt_in_keras_3_and_predicts_the_same(
        saved: dict, name: str, fmt: str) -> None:
    import keras

    loaded = load_model(str(saved["folder"] / f"{name}.{fmt}"))
    assert loaded.format == f"keras2-{fmt}" and loaded.note is None
    assert isinstance(loaded.model, keras.Model)
    original, feed = saved["models"][name], _feed(name, saved["data"])
    import tensorflow as tf

    x = tf.nest.map_structure(tf.constant, feed)
    want = original(x, training=False)
    got = loaded.model(x, training=False)
    want, got = (want, got) if isinstance(want, list) else ([want], [got])
    for a, b in zip(want, got, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
    assert keras2.disagreement(loaded.original, loaded.model, feed) is None


def test_the_compile_config_is_kept(saved: dict) -> None:
    folder = saved["folder"]
    mlp = load_subject(CaseSpec(name="m", model=str(folder / "mlp.savedmodel"),
                                data=str(folder / "data.parquet"), label="y",
                                features=["x0", "x1", "x2"], task="regression"))
    t = mlp.training
    assert (t.optimizer, t.loss, t.source) == ("sgd", "mse", "compile_config")
    assert t.learning_rate == pytest.approx(1e-6, rel=1e-5)
    assert dict(t.optimizer_config)["momentum"] == pytest.approx(0.5)
    assert mlp.retrainable and mlp.model_format == "keras2-savedmodel"
    norm = load_model(str(folder / "normalized.h5")).model.get_compile_config()
    assert norm["optimizer"]["class_name"] == "Adam"
    assert norm["optimizer"]["config"]["learning_rate"] == pytest.approx(0.003, rel=1e-5)
    assert norm["loss"] == "binary_crossentropy" and norm["metrics"] == ["accuracy", "auc"]


def test_a_multi_input_two_headed_keras_2_model_is_audited_per_head(saved: dict) -> None:
    folder = saved["folder"]
    subject = load_subject(CaseSpec(
        name="f", model=str(folder / "functional.savedmodel"), data=str(folder / "data.parquet"),
        label="y", output="risk", inputs={"x": ["x0", "x1", "x2"], "b": ["b0", "b1"]}))
    assert subject.model_format == "keras2-savedmodel" and subject.output_name == "risk"
    assert subject.task == "binary" and subject.training.loss == "binary_crossentropy"
    assert subject.training.optimizer == "rmsprop"
    import tensorflow as tf

    feed = tf.nest.map_structure(tf.constant, subject.inputs.feed())
    want = saved["models"]["functional"](feed, training=False)[1]
    np.testing.assert_allclose(np.asarray(subject.model(feed)), np.asarray(want),
                               rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def zoo_keras2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    names = ["keras2_savedmodel_lr_too_low", "keras2_h5_lr_too_low"]
    return audit_zoo(build_zoo(tmp_path_factory.mktemp("zoo"), names))


@pytest.mark.parametrize(("name", "fmt"), [("keras2_savedmodel_lr_too_low", "keras2-savedmodel"),
                                           ("keras2_h5_lr_too_low", "keras2-h5")])
def test_a_faulty_keras_2_model_gets_its_cause_confirmed_by_retraining(
        zoo_keras2: dict, name: str, fmt: str) -> None:
    report = zoo_keras2[name]
    assert report.status == "ok", report.error
    assert (report.verdict, report.primary_fault, report.model_format) == (
        "impaired", "lr_too_low", fmt)
    top = report.findings[0]
    assert top.confirmed and top.evidence["effect"] >= 0.2
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses["retrain"] == statuses["gradients"] == "ok"
    assert case_tables(report)["cases"].column("model_format").to_pylist() == [fmt]


def _keras2_savedmodel(folder: Path, layers: list[Any]) -> tuple[Path, Path]:
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    d = _data()
    model = tf_keras.Sequential([tf_keras.Input((3,)), *layers,
                                 tf_keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(d["x"], d["y"], epochs=1, verbose=0)
    model.save(str(folder / "m.savedmodel"), save_format="tf")
    data = folder / "d.parquet"
    pq.write_table(pa.table({"a": d["x"][:, 0], "b": d["x"][:, 1], "c": d["x"][:, 2],
                             "y": d["y"]}), data)
    return folder / "m.savedmodel", data


def _retrain_line(report: Any) -> tuple[str | None, str | None]:
    rows = {(m.probe, m.metric): m.detail for m in report.metrics}
    return rows[("retrain", "duration_s")], rows.get(("retrain", "error"))


def test_a_layer_keras_3_lacks_falls_back_to_the_inference_probes(tmp_path: Path) -> None:
    import tf_keras

    model, data = _keras2_savedmodel(tmp_path, [tf_keras.layers.Dense(4),
                                                tf_keras.layers.ThresholdedReLU(0.1)])
    report = audit_case(CaseSpec(name="t", model=str(model), data=str(data), label="y"))
    assert report.status == "ok" and report.model_format == "savedmodel"
    status, line = _retrain_line(report)
    assert status == "not_applicable"
    assert line == ("Keras 2 model for inference only: layer 'thresholded_re_lu' "
                    "(ThresholdedReLU) has no Keras 3 class")
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses["sensitivity"] == "ok"


def test_a_lambda_layer_is_code_refused_unless_trusted_and_never_rebuilt(tmp_path: Path) -> None:
    """tf_keras would run a Lambda's bytecode while loading whatever its safe mode says: the
    SavedModel is served by its signature instead, the .h5 is refused unless trusted."""
    import tf_keras

    model, _ = _keras2_savedmodel(tmp_path, [tf_keras.layers.Lambda(lambda t: t * 2.0)])
    loaded = load_model(str(model))
    assert (loaded.format, loaded.original) == ("savedmodel", None)
    assert loaded.note == ("Keras 2 model for inference only: it holds a Lambda layer (Python "
                           "code), which Keras 3 cannot rebuild")
    h5 = tmp_path / "lambda.h5"
    tf_keras.models.load_model(str(model)).save(str(h5), save_format="h5")
    with pytest.raises(ModelError, match=r"refused to load .* pass --trust-models"):
        load_model(str(h5))
    trusted = load_model(str(h5), trust=True)
    assert trusted.format == "savedmodel" and trusted.note == (
        "Keras 2 model for inference only: layer 'lambda' (Lambda) holds Python code, which "
        "Keras 3 cannot rebuild from a Keras 2 config")


def test_a_rebuild_that_predicts_otherwise_falls_back(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Failure injection: the weights are not copied, so the rebuild predicts from its fresh
    initialization; the check on the case's rows catches it."""
    import tf_keras

    model, data = _keras2_savedmodel(tmp_path, [tf_keras.layers.Dense(4, activation="relu")])
    monkeypatch.setattr(keras2, "_copy_weights", lambda layer, model: None)
    subject = load_subject(CaseSpec(name="t", model=str(model), data=str(data), label="y"))
    assert subject.model_format == "savedmodel" and not subject.retrainable
    assert subject.not_retrainable.startswith(
        "Keras 2 model for inference only: its Keras 3 rebuild does not predict as it does: "
        "predictions differ on ")
    assert "\n" not in subject.not_retrainable


def test_an_mlflow_tensorflow_flavor_folder_loads(saved: dict, tmp_path: Path) -> None:
    """The TF <= 2.15 `tensorflow` flavor: an MLflow model folder whose `data/model` is the
    Keras 2 SavedModel."""
    import shutil

    root = tmp_path / "mlflow_model"
    shutil.copytree(saved["folder"] / "mlp.savedmodel", root / "data" / "model")
    (root / "MLmodel").write_text("flavors:\n  tensorflow:\n    model_type: keras\n"
                                  "    saved_model_dir: model\n")
    assert load_model(str(root)).format == "keras2-savedmodel"
    (root / "data" / "model" / "saved_model.pb").rename(root / "data" / "gone.pb")
    shutil.rmtree(root / "data" / "model")
    with pytest.raises(ModelError, match="MLflow model folder holds no Keras model"):
        load_model(str(root))


def test_an_h5_neither_keras_reads_is_one_line_naming_both(tmp_path: Path) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an HDF5 file")
    with pytest.raises(ModelError) as err:
        load_model(str(broken))
    message = str(err.value)
    assert message.startswith(f"{broken}: cannot load model: ") and "\n" not in message
    assert "as a Keras 2 model (tf_keras): " in message


def test_every_model_format_is_documented() -> None:
    """The report's `cases.model_format` row and the README name every format the loader
    records."""
    root = Path(__file__).resolve().parents[1]
    row = next(line for line in (root / "docs" / "report.md").read_text().splitlines()
               if line.startswith("| `model_format` |"))
    readme = (root / "README.md").read_text()
    for name in MODEL_FORMATS:
        assert f"`{name}`" in row and f"`{name}`" in readme, name
