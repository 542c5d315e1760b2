"""Models the diagnosis was not built around, in the image of a peer's benchmark: AUTOTRAINER's
(ICSE 2021) Blob and Circle zoo and its demo cases, rebuilt from the data parameters and
training configs it publishes (`AutoTrainer/data/simplednn.py`: `make_blobs(1000, 3 centres,
2 features, cluster_std=2)` with one-hot labels, `make_circles(1000, noise=0.1)` scaled to
[-1, 1]; the demo cases' layers, optimizers, batch sizes and epochs), with the faults its
repairs address. Each model is trained and saved in one fresh process and audited in another,
as a fleet would meet it (so a Sequential model's automatic layer names are those of another
session). The expected fault is the mechanism the model was built with.

    python benchmarks/peer_models.py                 # every case, 2 worker processes
    python benchmarks/peer_models.py --case NAME     # some

Prints one line per case and `peer_models: RIGHT/N right`. Not a zoo scenario: nothing in the
diagnosis may be tuned to these cases.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def blob(seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """AUTOTRAINER's Blob: three overlapping clusters in 2-D (cluster_std 2), 1,000 rows."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2,
                      random_state=seed)
    return x.astype(np.float32), y.astype(np.int64)


def circle(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """AUTOTRAINER's Circle: two noisy concentric circles scaled to [-1, 1], 1,000 rows."""
    from sklearn.datasets import make_circles
    from sklearn.preprocessing import MinMaxScaler

    x, y = make_circles(n_samples=1000, noise=0.1, random_state=seed)
    x = MinMaxScaler(feature_range=(-1, 1)).fit_transform(x)
    return x.astype(np.float32), y.astype(np.int64)


@dataclass(frozen=True)
class Case:
    build: Callable[[Any], tuple[Any, np.ndarray, np.ndarray, Any, str, int, int]]
    expected: str | None
    note: str


def _stack(keras: Any, d: int, units: list[int], act: str, head: int, head_act: str | None,
           **dense: Any) -> Any:
    layers = [keras.Input((d,))]
    layers += [keras.layers.Dense(u, activation=act, **dense) for u in units]
    return keras.Sequential([*layers, keras.layers.Dense(head, activation=head_act)])


def vanish_demo(keras: Any) -> tuple:
    """The Gradient_Vanish demo: 8 sigmoid layers of 5, Adam(1e-3) (its typical rate)."""
    x, y = circle()
    model = _stack(keras, 2, [5] * 8, "sigmoid", 1, "sigmoid")
    return model, x, y, keras.optimizers.Adam(1e-3), "binary_crossentropy", 300, 128


def activation_demo(keras: Any) -> tuple:
    """The Improper_Activation demo: four ReLU layers of 50 (He init) into a ReLU head of 3
    under categorical cross-entropy, Adam(1e-4), batch 256."""
    x, y = blob()
    model = _stack(keras, 2, [50] * 4, "relu", 3, "relu", kernel_initializer="he_uniform")
    return model, x, y, keras.optimizers.Adam(1e-4), "categorical_crossentropy", 300, 256


def sigmoid_head_healthy(keras: Any) -> tuple:
    """A multi-unit sigmoid head under categorical cross-entropy (Keras normalizes it)."""
    x, y = blob()
    model = _stack(keras, 2, [50, 50], "relu", 3, "sigmoid")
    return model, x, y, keras.optimizers.Adam(1e-3), "categorical_crossentropy", 60, 32


def overlap_healthy(keras: Any) -> tuple:
    """Blob as published: the clusters overlap, every label as drawn."""
    x, y = blob()
    model = _stack(keras, 2, [50, 50], "relu", 3, "softmax")
    return model, x, y, keras.optimizers.Adam(1e-3), "categorical_crossentropy", 60, 32


def overlap_lr_too_high(keras: Any) -> tuple:
    """The same network under SGD at 3.0."""
    x, y = blob()
    model = _stack(keras, 2, [50, 50], "relu", 3, "softmax")
    return model, x, y, keras.optimizers.SGD(3.0), "categorical_crossentropy", 60, 32


def overlap_lr_too_low(keras: Any) -> tuple:
    """The same network under SGD at 1e-5."""
    x, y = blob()
    model = _stack(keras, 2, [50, 50], "relu", 3, "softmax")
    return model, x, y, keras.optimizers.SGD(1e-5), "categorical_crossentropy", 60, 32


def circle_exponential(keras: Any) -> tuple:
    """Four exponential layers of 50: the weights blow up to NaN."""
    x, y = circle()
    model = _stack(keras, 2, [50] * 4, "exponential", 1, "sigmoid")
    return model, x, y, keras.optimizers.Adam(1e-2), "binary_crossentropy", 100, 32


def circle_linear_stack(keras: Any) -> tuple:
    """Three linear layers: a linear model, which cannot separate two circles."""
    x, y = circle()
    model = _stack(keras, 2, [50] * 3, None, 1, "sigmoid")
    return model, x, y, keras.optimizers.Adam(1e-3), "binary_crossentropy", 100, 32


def circle_dead_relu(keras: Any) -> tuple:
    """Four ReLU layers whose biases start at -3: no unit ever fires."""
    x, y = circle()
    model = _stack(keras, 2, [50] * 4, "relu", 1, "sigmoid",
                   bias_initializer=keras.initializers.Constant(-3.0))
    return model, x, y, keras.optimizers.Adam(1e-3), "binary_crossentropy", 100, 32


def circle_unscaled(keras: Any) -> tuple:
    """The circles in raw units (x 1000 + 500), SGD(0.01): `data_1`'s fault."""
    x, y = circle()
    model = _stack(keras, 2, [50, 50], "relu", 1, "sigmoid")
    return model, x * 1000 + 500, y, keras.optimizers.SGD(0.01), "binary_crossentropy", 100, 32


def circle_cce_one_unit(keras: Any) -> tuple:
    """One sigmoid unit under categorical cross-entropy: the loss is constant (`loss_1`)."""
    x, y = circle()
    model = _stack(keras, 2, [50, 50], "relu", 1, "sigmoid")
    return model, x, y, keras.optimizers.Adam(1e-3), "categorical_crossentropy", 100, 32


def circle_sgd_tanh_healthy(keras: Any) -> tuple:
    """Two tanh layers under SGD with momentum: an ordinary working model."""
    x, y = circle()
    model = _stack(keras, 2, [50, 50], "tanh", 1, "sigmoid")
    return (model, x, y, keras.optimizers.SGD(0.05, momentum=0.9), "binary_crossentropy", 100,
            32)


def circle_selu_big_init(keras: Any) -> tuple:
    """Eight SELU layers drawn from N(0, 1.5) instead of LeCun's init: activations explode."""
    x, y = circle()
    model = _stack(keras, 2, [50] * 8, "selu", 1, "sigmoid",
                   kernel_initializer=keras.initializers.RandomNormal(0, 1.5))
    return model, x, y, keras.optimizers.Adam(1e-3), "binary_crossentropy", 100, 32


def blob_relabelled(keras: Any) -> tuple:
    """Blob with 30% of its rows given another class at random, and a network wide and
    trained long enough to memorize them."""
    x, y = blob()
    rng = np.random.default_rng(0)
    moved = rng.choice(len(y), int(0.3 * len(y)), replace=False)
    y = y.copy()
    y[moved] = (y[moved] + rng.integers(1, 3, len(moved))) % 3
    model = _stack(keras, 2, [256, 256], "relu", 3, "softmax")
    return model, x, y, keras.optimizers.Adam(1e-3), "categorical_crossentropy", 300, 32


CASES: dict[str, Case] = {
    "vanish_demo": Case(vanish_demo, "vanishing_gradient", "AUTOTRAINER's demo"),
    "activation_demo": Case(activation_demo, "loss_mismatch", "AUTOTRAINER's demo"),
    "sigmoid_head_healthy": Case(sigmoid_head_healthy, None, "Keras normalizes"),
    "overlap_healthy": Case(overlap_healthy, None, "Blob as published"),
    "overlap_lr_too_high": Case(overlap_lr_too_high, "lr_too_high", "lr_3"),
    "overlap_lr_too_low": Case(overlap_lr_too_low, "lr_too_low", "lr_3"),
    "circle_exponential": Case(circle_exponential, "exploding_gradient", "relu_1"),
    "circle_linear_stack": Case(circle_linear_stack, "saturated_activations", "relu_1"),
    "circle_dead_relu": Case(circle_dead_relu, "dead_relu", "initial_3"),
    "circle_unscaled": Case(circle_unscaled, "unscaled_inputs", "data_1"),
    "circle_cce_one_unit": Case(circle_cce_one_unit, "loss_mismatch", "loss_1"),
    "circle_sgd_tanh_healthy": Case(circle_sgd_tanh_healthy, None, "ordinary"),
    "circle_selu_big_init": Case(circle_selu_big_init, "exploding_gradient", "selu_1"),
    "blob_relabelled": Case(blob_relabelled, "bad_data", "30% relabelled"),
}


def build(name: str, folder: str) -> dict[str, Any]:
    """Train and save one case (in its own fresh process)."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(7)
    model, x, y, optimizer, loss, epochs, batch = CASES[name].build(keras)
    labels = np.eye(int(y.max()) + 1)[y] if loss == "categorical_crossentropy" and (
        model.outputs[0].shape[-1] > 1) else y
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(x, labels, epochs=epochs, batch_size=batch, verbose=0)
    path = Path(folder)
    model.save(path / f"{name}.keras")
    columns = {f"f{i}": x[:, i] for i in range(x.shape[1])} | {"label": y}
    pq.write_table(pa.table(columns), path / f"{name}.parquet")
    return {"epochs": epochs, "batch_size": batch}


def audit(name: str, folder: str, training: dict[str, Any]) -> dict[str, Any]:
    """Audit one saved case (in another fresh process)."""
    from audit.engine import audit_case
    from audit.manifest.case import CaseSpec, Training

    started = time.monotonic()
    spec = CaseSpec(name=name, model=f"{folder}/{name}.keras", data=f"{folder}/{name}.parquet",
                    label="label", training=Training(**training))
    report = audit_case(spec)
    errors = [m.detail for m in report.metrics if m.metric.endswith(".error") and m.detail]
    return {"verdict": report.verdict, "primary": report.primary_fault, "error": report.error,
            "seconds": round(time.monotonic() - started, 1), "part_errors": errors,
            "findings": [(f.fault, f.severity, f.confirmed, round(f.confidence, 2))
                         for f in report.findings[:4]]}


def main() -> int:
    from audit.zoo import map_in_processes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="a case name (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    names = args.case or list(CASES)
    with tempfile.TemporaryDirectory(prefix="peer-") as folder:
        trainings = map_in_processes(build, [(n, folder) for n in names], args.workers)
        done = map_in_processes(audit, [(n, folder, t) for n, t in
                                        zip(names, trainings, strict=True)], args.workers)
    right = 0
    for name, result in zip(names, done, strict=True):
        expected = CASES[name].expected
        ok = result["primary"] == expected and (expected is not None
                                                or result["verdict"] == "healthy")
        right += ok
        print(f"{'ok ' if ok else 'MISS'} {name}: expected {expected}, got {result['verdict']} "
              f"{result['primary']} ({result['seconds']} s) {result['findings']}"
              f"{' ' + str(result['part_errors']) if result['part_errors'] else ''}")
    print(f"peer_models: {right}/{len(names)} right")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(zip(names, done, strict=True)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
