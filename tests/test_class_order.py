"""Labels encoded in another class order than the model's: `classes:` declares the order; without
it, an order that fits clearly better is inferred and named, never silently healthy, while
healthy and skill-less models keep their verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from audit import faults
from audit.diagnose import Diagnosis, class_order
from audit.engine import audit_case
from audit.evidence.results import Finding
from audit.manifest.case import CaseSpec, case_id
from audit.manifest.schema import ManifestError, parse_manifest
from audit.subject import SubjectError, classes, load_subject

#: no retraining where the verdict does not need it (a model that does well skips it anyway)
FAST = ("data", "config", "sensitivity")
#: the team's order: the model's unit k was trained on the k-th name
TEAM = ["dog", "cat", "bee", "ant"]  # sorted, it is reversed: no class keeps its unit
ONE_SWAP = ["a", "b", "d", "c"]  # sorted, two classes trade units: half the classes right
ROWS = 400


def blobs(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs in 4 dimensions: rows and their class index."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_classes, 4))
    y = rng.integers(0, n_classes, size=ROWS)
    x = (centers[y] + rng.normal(size=(ROWS, 4))).astype(np.float32)
    return x, y


def train(x: np.ndarray, y: np.ndarray, units: int, path: Path) -> None:
    """A small classifier trained on class indices `y` (softmax, or one sigmoid unit)."""
    import keras

    keras.utils.set_random_seed(0)
    activation = "sigmoid" if units == 1 else "softmax"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(units, activation=activation)])
    loss = "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    model.save(path)


def table(x: np.ndarray, labels: list[Any], path: Path) -> Path:
    columns = {f"x{j}": x[:, j] for j in range(x.shape[1])}
    pq.write_table(pa.table({**columns, "label": labels}), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models trained on the team's encodings, and data naming the classes in other ways."""
    folder = tmp_path_factory.mktemp("order")
    x, y = blobs(4)
    train(x, y, 4, folder / "four.keras")  # unit k is the class TEAM[k] (or ONE_SWAP[k])
    train(x, np.random.default_rng(1).permutation(y), 4, folder / "noise.keras")
    x3, y3 = blobs(3, seed=2)
    encoded = np.array([2, 0, 1])[y3]  # integer labels re-encoded by the team: 0 -> 2, ...
    train(x3, encoded, 3, folder / "three.keras")
    x2, y2 = blobs(2, seed=3)
    train(x2, y2, 1, folder / "binary.keras")  # unit 0 > 0.5 means "no" (team: yes=0, no=1)
    return {
        "four": folder / "four.keras", "noise": folder / "noise.keras",
        "three": folder / "three.keras", "binary": folder / "binary.keras",
        "strings": table(x, [TEAM[i] for i in y], folder / "strings.parquet"),
        "one_swap": table(x, [ONE_SWAP[i] for i in y], folder / "one_swap.parquet"),
        "sorted": table(x, [sorted(TEAM)[i] for i in y], folder / "sorted.parquet"),
        "ints": table(x3, [int(v) for v in y3], folder / "ints.parquet"),
        "yes_no": table(x2, [["yes", "no"][i] for i in y2], folder / "yes_no.parquet"),
    }


def spec(files: dict[str, Path], model: str, data: str, **kw: Any) -> CaseSpec:
    kw.setdefault("probes", FAST)
    return CaseSpec(name=f"{model}-{data}", model=str(files[model]), data=str(files[data]),
                    label="label", **kw)


def order_finding(report: Any) -> dict[str, Any]:
    """The label_order finding leads; on a model healthy in the inferred order it is a note
    (`info`) and the case healthy, not a fault of the model."""
    assert report.status == "ok", report.error
    first = report.findings[0]
    assert first.fault == "label_order"
    assert (report.verdict, report.primary_fault, first.severity) == ("healthy", None, "info")
    assert first.probe == class_order.PROBE and not first.confirmed
    return first.evidence["class_order"]


def skill(report: Any) -> float:
    return next(m.value for m in report.metrics
                if m.probe == "sensitivity" and m.metric == "skill")


def test_string_labels_in_the_teams_order_are_named_not_no_skill(files: dict[str, Path]) -> None:
    report = audit_case(spec(files, "four", "strings", probes=(*FAST, "retrain")))
    evidence = order_finding(report)
    assert evidence["inferred"] is True and evidence["order"] == TEAM
    assert evidence["skill_sorted"] < 0 and evidence["skill_inferred"] > 0.95
    assert evidence["rows"] == ROWS
    # the probes ran under the inferred order: the real skill, and no other fault
    assert skill(report) > 0.95
    assert all(f.severity == "info" for f in report.findings[1:])
    retrain_status = {m.probe: m.detail for m in report.metrics if m.metric == "duration_s"}
    assert retrain_status["retrain"] == "ok"
    assert "classes: " + '["dog", "cat", "bee", "ant"]' in report.findings[0].recommendation


def test_declared_classes_make_the_same_case_healthy(files: dict[str, Path]) -> None:
    report = audit_case(spec(files, "four", "strings", classes=tuple(TEAM)))
    assert report.status == "ok", report.error
    assert (report.verdict, report.primary_fault) == ("healthy", None)
    assert "label_order" not in {f.fault for f in report.findings}
    assert skill(report) > 0.95


def test_labels_in_the_models_order_are_left_alone(files: dict[str, Path]) -> None:
    """Strings whose sorted order is the model's: healthy, nothing inferred."""
    report = audit_case(spec(files, "four", "sorted"))
    assert (report.verdict, report.primary_fault) == ("healthy", None)
    assert not any(f.fault == "label_order" for f in report.findings)


def test_two_classes_trading_units_are_found_too(files: dict[str, Path]) -> None:
    """Half the classes right in sorted order (skill ~0.33, poor but not none): the order
    that fits is still named."""
    report = audit_case(spec(files, "four", "one_swap"))
    evidence = order_finding(report)
    assert evidence["order"] == ONE_SWAP
    assert 0.2 < evidence["skill_sorted"] < 0.45 and evidence["skill_inferred"] > 0.95


def test_integer_labels_encoded_in_another_order(files: dict[str, Path]) -> None:
    report = audit_case(spec(files, "three", "ints"))
    evidence = order_finding(report)
    assert evidence["order"] == [1, 2, 0]  # unit 0 was trained on label 1, ...
    declared = audit_case(spec(files, "three", "ints", classes=(1, 2, 0)))
    assert (declared.verdict, declared.primary_fault) == ("healthy", None)


def test_a_binary_model_with_flipped_labels(files: dict[str, Path]) -> None:
    """One sigmoid unit: sorted, "no" is 0, but the team trained "yes" as 0: the flip fits."""
    report = audit_case(spec(files, "binary", "yes_no"))
    evidence = order_finding(report)
    assert evidence["order"] == ["yes", "no"]
    assert evidence["skill_sorted"] < -0.9 and evidence["skill_inferred"] > 0.9
    declared = audit_case(spec(files, "binary", "yes_no", classes=("yes", "no")))
    assert (declared.verdict, declared.primary_fault) == ("healthy", None)


def test_a_model_without_skill_stays_no_skill(files: dict[str, Path]) -> None:
    """Trained on shuffled labels: no order fits, so nothing is inferred."""
    report = audit_case(spec(files, "noise", "strings"))
    assert report.status == "ok", report.error
    assert report.verdict in ("impaired", "flat")
    assert report.primary_fault in ("no_skill", "flat_output")
    assert "label_order" not in {f.fault for f in report.findings}
    case = spec(files, "noise", "strings")
    anyway = class_order.OrderSettings(poor_skill=9.0, clear_skill=-9.0, min_gain=-9.0)
    _, best = class_order.infer(load_subject(case), case, anyway)
    # the best order only matches the clusters the model lumped at random (0.26 measured)
    assert best is not None and best.skill_inferred < class_order.SETTINGS.clear_skill


def test_label_order_leads_a_diagnosis_that_found_another_fault() -> None:
    """Under the inferred order the probes may still find a fault: the labels come first. A
    model they find healthy keeps its verdict, with the order as a note."""
    other = Finding(fault="lr_too_low", severity="critical", confidence=0.8, confirmed=True,
                    probe="retrain", evidence={}, recommendation="raise it")
    found = class_order.judge(
        Diagnosis("impaired", "lr_too_low", [other]),
        class_order.ClassOrder(("b", "a"), -1.0, 0.6, 100),
    )
    assert (found.verdict, found.primary_fault) == ("impaired", "label_order")
    assert [f.fault for f in found.findings] == ["label_order", "lr_too_low"]
    healthy = class_order.judge(
        Diagnosis("healthy", None, []), class_order.ClassOrder(("b", "a"), -1.0, 1.0, 100)
    )
    assert (healthy.verdict, healthy.primary_fault) == ("healthy", None)
    assert [(f.fault, f.severity) for f in healthy.findings] == [("label_order", "info")]
    flat = class_order.judge(
        Diagnosis("flat", "flat_output", []), class_order.ClassOrder(("b", "a"), -1.0, 0.6, 100)
    )
    assert (flat.verdict, flat.primary_fault) == ("flat", "label_order")


def test_the_assignment_maximizes_mean_recall() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    units = np.array([2, 2, 0, 0, 1, 1, 1, 0])  # class 2 mostly on unit 1
    assert class_order.assignment(y, units, 3, 3).tolist() == [2, 0, 1]
    # more units than classes: a class may take a unit beyond the class count
    assert class_order.assignment(
        np.array([0, 0, 1, 1]), np.array([3, 3, 0, 0]), 2, 4
    ).tolist() == [3, 0]


# ---------------------------------------------------------------- errors and the manifest


def test_labels_not_in_classes_are_named(files: dict[str, Path]) -> None:
    case = spec(files, "four", "strings", classes=("dog", "cat", "cow", "pig"))
    with pytest.raises(SubjectError) as err:
        load_subject(case)
    message = str(err.value)
    assert "four-strings" in message and "['ant', 'bee']" in message
    assert "classes are ['dog', 'cat', 'cow', 'pig']" in message
    report = audit_case(case)
    assert report.status == "error" and "'ant'" in (report.error or "")


def test_classes_must_match_the_output_units(files: dict[str, Path]) -> None:
    with pytest.raises(SubjectError, match=r"lists 3 classes but the model has 4 output unit"):
        load_subject(spec(files, "four", "strings", classes=("dog", "cat", "bee")))
    with pytest.raises(SubjectError, match="a single output unit scores two classes"):
        load_subject(spec(files, "binary", "yes_no", classes=("yes", "no", "maybe")))
    with pytest.raises(SubjectError, match="task: regression"):
        load_subject(spec(files, "binary", "yes_no", classes=("yes", "no"), task="regression"))


def test_classes_in_the_manifest_reach_cases_and_fleet_entries(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.keras").write_bytes(b"x")
    doc = {
        "name": "n",
        "cases": [{"model": "m/a.keras", "data": "d.parquet", "classes": ["dog", "cat"]}],
        "fleet": [
            {
                "models": "m/*.keras",
                "data": "{stem}.parquet",
                "name": "f-{stem}",
                "classes": [2, 0, 1],
            }
        ],
    }
    cases = parse_manifest(doc, base_dir=str(tmp_path)).cases()
    assert [c.classes for c in cases] == [("dog", "cat"), (2, 0, 1)]
    unset = cases[0].model_copy(update={"classes": None})
    assert case_id(unset) != case_id(cases[0])
    with pytest.raises(ManifestError, match=r"cases\[0\]\.classes: 'dog' is listed twice"):
        parse_manifest(
            {"name": "n", "cases": [{"model": "a", "data": "b", "classes": ["dog", "dog"]}]}
        )
    with pytest.raises(ManifestError, match=r"cases\[0\]\.classes"):
        parse_manifest({"name": "n", "cases": [{"model": "a", "data": "b", "classes": ["x"]}]})
    with pytest.raises(ManifestError, match=r"\[True, False\] as booleans; quote class names"):
        parse_manifest(yaml.safe_load("name: n\ncases:\n- {model: a, data: b, classes: [yes, no]}"))


def test_label_order_is_in_the_vocabulary_and_the_readme() -> None:
    assert faults.get("label_order").fix.startswith("Set `classes:`")
    assert "label_order" not in faults.CAUSE_CODES  # diagnose's rules do not judge it
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "| `label_order` |" in readme and "classes:" in readme


def test_labels_match_classes_as_text() -> None:
    """2, 2.0 and '2' are one class; a CSV's booleans are true/false; unknowns are counted."""
    y, names = classes.encode(np.array([2.0, 0.0, 1.0, 2.0]), ("2", 0, 1), "case 'c'", "y")
    assert y.tolist() == [0, 1, 2, 0] and names == ["2", "0", "1"]
    y, _ = classes.encode(np.array([True, False]), ("true", "false"), "case 'c'", "y")
    assert y.tolist() == [0, 1]
    with pytest.raises(classes.ClassesError, match=r"\['c', 'd', 'e', 'f', 'g'\] \(and 1 more\)"):
        classes.encode(np.array(list("abcdefgh"), dtype=object), ("a", "b"), "case 'c'", "y")
