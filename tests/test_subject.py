"""Loading models and data: formats, task inference, and one-line errors that say what and where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.engine import audit_case
from audit.manifest.case import CaseSpec, Training
from audit.subject import SubjectError, infer_task, load_subject


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny 3-feature binary model saved as .keras, .h5 and SavedModel, with data files."""
    import keras

    folder = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model.fit(x, y, epochs=2, verbose=0)
    paths = {"keras": folder / "m.keras", "h5": folder / "m.h5", "saved": folder / "saved"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(str(paths["saved"]))
    paths["parquet"] = folder / "d.parquet"
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "target": y}),
                   paths["parquet"])
    paths["csv"] = folder / "d.csv"
    lines = ["a,b,c,target"] + [f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(x, y, strict=True)]
    lines[5] = "oops,1.0,2.0,1"  # a malformed cell
    paths["csv"].write_text("\n".join(lines) + "\n")
    paths["npz"] = folder / "d.npz"
    np.savez(paths["npz"], x=x, y=y)
    return paths


def spec(model: Path, data: Path, **kw: object) -> CaseSpec:
    return CaseSpec(name="t", model=str(model), data=str(data), **kw)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_loads_model_data_task_and_training_config(tiny: dict, fmt: str) -> None:
    s = load_subject(spec(tiny[fmt], tiny["parquet"], label="target"))
    assert s.inputs.feed().shape == (64, 3) and s.feature_names == ["a", "b", "c"]
    assert [a.kind for a in s.inputs.arrays] == ["numeric"]
    assert s.task == "binary" and s.n_classes == 2
    assert s.training.optimizer == "sgd"
    assert s.training.learning_rate == pytest.approx(0.05)
    assert dict(s.training.optimizer_config)["momentum"] == pytest.approx(0.9)
    assert s.training.loss == "binary_crossentropy"
    assert s.retrainable


def test_spec_overrides_the_compile_config(tiny: dict) -> None:
    s = load_subject(spec(tiny["keras"], tiny["npz"],
                          training=Training(optimizer="adam", learning_rate=0.1, epochs=7)))
    assert (s.training.optimizer, s.training.learning_rate, s.training.epochs) == ("adam", 0.1, 7)
    assert s.training.source == "spec"


def test_csv_malformed_cells_become_nan_and_are_counted(tiny: dict) -> None:
    s = load_subject(spec(tiny["keras"], tiny["csv"], label="target"))
    assert s.malformed_cells == 1
    assert int(np.isnan(s.inputs.feed()).sum()) == 1


def test_savedmodel_supports_inference_probes_only(tiny: dict) -> None:
    report = audit_case(spec(tiny["saved"], tiny["parquet"], label="target"))
    assert report.status == "ok"
    statuses = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert statuses["sensitivity"] == "ok"
    assert statuses["retrain"] == "not_applicable"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"label": "nope"}, "column 'nope' not found; columns are ['a', 'b', 'c', 'target']"),
        ({"label": "target", "features": ["a", "b"]},
         "expects rows of shape (3,) but the data gives (2,)"),
        ({"label": "target", "features": ["a", "zz"]}, "column(s) ['zz'] not found"),
    ],
)
def test_data_errors_name_what_and_where(tiny: dict, kwargs: dict, expected: str) -> None:
    with pytest.raises(SubjectError) as err:
        load_subject(spec(tiny["keras"], tiny["parquet"], **kwargs))
    message = str(err.value)
    assert expected in message and str(tiny["parquet"]) in message and "\n" not in message


def test_file_errors_are_one_line_reports(tiny: dict, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip file")
    odd = tmp_path / "model.onnx"
    odd.write_bytes(b"x")
    cases = {
        "cannot load model": spec(corrupt, tiny["parquet"]),
        "unsupported model format '.onnx'": spec(odd, tiny["parquet"]),
        "data file not found": spec(tiny["keras"], tmp_path / "missing.parquet"),
        "unsupported data format '.xlsx'": spec(tiny["keras"], tmp_path / "d.xlsx"),
    }
    (tmp_path / "d.xlsx").write_bytes(b"x")
    for expected, case in cases.items():
        report = audit_case(case)
        assert report.status == "error" and report.verdict == "error"
        assert expected in report.error and "\n" not in report.error


def test_unsafe_model_is_refused_unless_trusted(tmp_path: Path, tiny: dict) -> None:
    import keras

    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(outputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(SubjectError, match="trust-models"):
        load_subject(spec(path, tiny["parquet"], label="target"))
    assert load_subject(spec(path, tiny["parquet"], label="target", trust_model=True)).inputs


def test_task_inference_from_labels() -> None:
    assert infer_task(np.array([0.5, 1.2, 3.3])) == "regression"
    assert infer_task(np.array([0.0, 1.0, 1.0])) == "binary"
    assert infer_task(np.array([0.0, 1.0, 2.0, 2.0])) == "multiclass"
    assert infer_task(np.eye(3)[[0, 1, 2, 1]]) == "multiclass"
    assert infer_task(np.array(["cat", "dog", "cat"], dtype=object)) == "binary"
    assert infer_task(np.arange(200, dtype=float)) == "regression"
