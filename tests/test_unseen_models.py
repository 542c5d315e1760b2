"""Models the rules were not designed around: other architectures, widths, data and tasks.

The zoo is what the diagnosis was developed on; these cases check that it generalizes. Each is
trained the ordinary way (compile + fit) and must get the right primary fault, or `healthy`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ZOO_WORKERS

from audit.engine import audit_case
from audit.manifest.case import CaseSpec, Training
from audit.zoo import map_in_processes


def _data(seed: int, n: int, d: int, classes: int = 0, weights: list[float] | None = None,
          sep: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if classes:
        centers = rng.normal(0, sep, (classes, d))
        p = np.array(weights or [1.0] * classes)
        y = rng.choice(classes, size=n, p=p / p.sum())
        return (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    w = rng.normal(0, 1, d)
    y = np.sin(x @ w / np.sqrt(d)) + 0.3 * x[:, 1] * x[:, 2] + rng.normal(0, 0.05, n)
    return x, y.astype(np.float32)


def two_branch_healthy(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(101, 900, 15, classes=3)
    inputs = keras.Input((15,))
    a = keras.layers.Dense(24, activation="elu")(inputs)
    b = keras.layers.Dense(8, activation="tanh")(inputs)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([a, b]))
    return (keras.Model(inputs, out), x, y, keras.optimizers.Adam(2e-3),
            "sparse_categorical_crossentropy", 15)


def momentum_regression_healthy(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(102, 1000, 10)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(48, activation="relu"),
                              keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.SGD(0.01, momentum=0.9), "mse", 30


def wide_sgd_lr_too_low(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(103, 900, 20, classes=4)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(4, activation="softmax")])
    return model, x, y, keras.optimizers.SGD(1e-5), "sparse_categorical_crossentropy", 15


def inf_rows_binary(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(104, 900, 12, classes=2)
    rng = np.random.default_rng(104)
    rows = rng.choice(len(x), 27, replace=False)
    x[rows, rng.integers(0, 12, 27)] = np.inf
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(20, activation="relu"),
                              keras.layers.Dense(20, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    return model, x, y, keras.optimizers.Adam(1e-3), "binary_crossentropy", 10


def huge_targets(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(105, 900, 7)
    y = (y * 2e4 + 1e5).astype(np.float32)
    model = keras.Sequential([keras.Input((7,))] + [keras.layers.Dense(24, activation="relu")
                                                    for _ in range(3)] + [keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.RMSprop(1e-3), "mae", 15


def multiclass_rare_classes(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(106, 2000, 5, classes=3, weights=[0.95, 0.03, 0.02], sep=0.5)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(12, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    return model, x, y, keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy", 15


def softmax_single_unit(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(107, 800, 9, classes=2)
    model = keras.Sequential([keras.Input((9,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="softmax")])
    return model, x, y, keras.optimizers.Adam(1e-3), "binary_crossentropy", 10


def sgd_diverging(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    x, y = _data(108, 900, 6)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(64, activation="tanh"),
                              keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.SGD(4.0), "mse", 15


def noisy_raw_inputs_healthy(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    """Raw inputs in 0..50 and a noisy target (R² about 0.4 at best): the model is as good as
    the data allows, so nothing may be blamed, however unscaled the inputs look."""
    rng = np.random.default_rng(109)
    x = rng.uniform(0, 50, (1000, 4)).astype(np.float32)
    y = (0.05 * x[:, 0] - 0.03 * x[:, 1] + rng.normal(0, 1.0, 1000)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.Adam(3e-3), "mse", 40


def tanh_net_softmax_layer(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    """A tanh network whose second hidden layer's activation was swapped to softmax (the
    zoo's case is a ReLU network, its first layer): Adam or a higher rate also restore it."""
    x, y = _data(110, 1000, 10)
    model = keras.Sequential([keras.Input((10,))] + [
        keras.layers.Dense(units, activation=act)
        for units, act in ((48, "tanh"), (48, "softmax"), (24, "tanh"), (12, "tanh"))
    ] + [keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.SGD(0.01), "mse", 30


def tanh_net_healthy(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    """The same network and training with every hidden layer tanh."""
    x, y = _data(110, 1000, 10)
    model = keras.Sequential([keras.Input((10,))] + [
        keras.layers.Dense(units, activation="tanh") for units in (48, 48, 24, 12)
    ] + [keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.SGD(0.01), "mse", 30


def ftrl_default_rate(keras: Any) -> tuple[Any, np.ndarray, np.ndarray, Any, str, int]:
    """DeepCrime's change of optimizer: FTRL (made for sparse linear models) at Keras' default
    rate, on a ReLU network; it stays flat at its usual rate too, and Adam trains it."""
    x, y = _data(111, 1000, 10)
    model = keras.Sequential([keras.Input((10,))] + [
        keras.layers.Dense(units, activation="relu") for units in (48, 24, 12)
    ] + [keras.layers.Dense(1)])
    return model, x, y, keras.optimizers.Ftrl(), "mse", 30


CASES: dict[str, tuple[Callable[[Any], tuple], str | None]] = {
    "noisy_raw_inputs_healthy": (noisy_raw_inputs_healthy, None),
    "two_branch_healthy": (two_branch_healthy, None),
    "momentum_regression_healthy": (momentum_regression_healthy, None),
    "wide_sgd_lr_too_low": (wide_sgd_lr_too_low, "lr_too_low"),
    "inf_rows_binary": (inf_rows_binary, "bad_data"),
    "huge_targets": (huge_targets, "unscaled_targets"),
    "multiclass_rare_classes": (multiclass_rare_classes, "class_imbalance"),
    "softmax_single_unit": (softmax_single_unit, "loss_mismatch"),
    "sgd_diverging": (sgd_diverging, "lr_too_high"),
    "tanh_net_softmax_layer": (tanh_net_softmax_layer, "saturated_activations"),
    "tanh_net_healthy": (tanh_net_healthy, None),
    "ftrl_default_rate": (ftrl_default_rate, "optimizer_stalled"),
}


def build_and_audit(name: str, folder: Path) -> Any:
    """Train one case the ordinary way, save it with its data, and audit it."""
    import keras

    keras.utils.set_random_seed(7)
    model, x, y, optimizer, loss, epochs = CASES[name][0](keras)
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.save(folder / f"{name}.keras")
    columns = {f"f{i}": x[:, i] for i in range(x.shape[1])} | {"label": y}
    pq.write_table(pa.table(columns), folder / f"{name}.parquet")
    spec = CaseSpec(name=name, model=str(folder / f"{name}.keras"),
                    data=str(folder / f"{name}.parquet"), label="label",
                    training=Training(epochs=epochs, batch_size=32))
    return audit_case(spec)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case built and audited, spread over the zoo's worker processes (each case seeds
    itself, so where it runs does not change it)."""
    folder: Path = tmp_path_factory.mktemp("unseen")
    names = list(CASES)
    done = map_in_processes(build_and_audit, [(name, folder) for name in names], ZOO_WORKERS)
    return dict(zip(names, done, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_unseen_model_gets_the_right_primary_fault(name: str, reports: dict) -> None:
    report = reports[name]
    expected = CASES[name][1]
    assert report.status == "ok", report.error
    summary = [(f.fault, f.severity, f.confirmed, f.evidence.get("effect"))
               for f in report.findings]
    assert report.primary_fault == expected, summary
    if expected is None:
        assert report.verdict == "healthy"
    else:
        assert report.verdict in ("flat", "impaired")
        assert report.findings[0].severity == "critical"
