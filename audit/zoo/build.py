"""Building the zoo to disk: train a scenario (seeded), save its model (`.keras` or a SavedModel
export) and its data (Parquet or `.npz`) and describe the result as a `ZooCase`, for one
scenario, for many in worker processes, or the tiny case the fleet tests use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audit.zoo import keras2_saved
from audit.zoo.processes import map_in_processes
from audit.zoo.scenarios import SCENARIOS, Scenario
from audit.zoo.shapes import Built


@dataclass(frozen=True)
class ZooCase:
    """A built scenario: where its model and data are and what the audit should find."""

    name: str
    model_path: str
    data_path: str
    label: str
    task: str
    training: dict[str, Any]
    expected_fault: str | None
    description: str
    output: str | None = None  # the audited head of a multi-output model
    retrainable: bool = True  # False for a SavedModel export (inference probes only)
    shape: str = "mlp"  # mlp | structured | cnn | text | sequence | two_heads | export | keras2

    def spec_fields(self) -> dict[str, Any]:
        """The `CaseSpec` (or manifest `cases:` entry) fields that audit this case as built:
        its files, label, head and the training the zoo used."""
        fields: dict[str, Any] = {"name": self.name, "model": self.model_path,
                                  "data": self.data_path, "label": self.label,
                                  "training": dict(self.training)}
        if self.output is not None:
            fields["output"] = self.output
        return fields


def build_scenario(scenario: Scenario, folder: Path) -> ZooCase:
    """Train the scenario's model and save it with its data under `folder`."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(42)
    built = scenario.build()
    if not isinstance(built, Built):
        model, x, y, training = built
        built = Built(model, {**{f"x{i}": x[:, i] for i in range(x.shape[1])}, "y": y}, "y",
                      training)
    folder.mkdir(parents=True, exist_ok=True)
    if built.save_as == "savedmodel":
        model_path = folder / f"{scenario.name}.savedmodel"
        built.model.export(str(model_path), verbose=False)
    elif built.save_as in keras2_saved.SAVE_AS:
        model_path = keras2_saved.save(built.model, folder, scenario.name, built.save_as)
    else:
        model_path = folder / f"{scenario.name}.keras"
        built.model.save(model_path)
    data_path = folder / f"{scenario.name}.{built.data_as}"
    if built.data_as == "npz":
        np.savez(data_path, **built.columns)
    else:
        pq.write_table(pa.table({k: _arrow(v) for k, v in built.columns.items()}), data_path)
    return ZooCase(scenario.name, str(model_path), str(data_path), built.label, scenario.task,
                   built.training, scenario.expected_fault, scenario.description,
                   output=built.output, retrainable=built.save_as != "savedmodel",
                   shape=scenario.shape)


def _arrow(values: np.ndarray) -> Any:
    """A column for Parquet: 2-D arrays become `fixed_size_list` columns (images, sequences)."""
    import pyarrow as pa

    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    if values.dtype == object:
        return pa.array(list(values), type=pa.string())
    return pa.array(values)


def build_zoo(folder: Path, names: list[str] | None = None, workers: int = 1) -> list[ZooCase]:
    """Build the named scenarios (all by default) into `folder`, in `workers` processes (each
    scenario seeds itself, so where it is built does not change it)."""
    unknown = sorted(set(names or []) - set(SCENARIOS))
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; valid names are {list(SCENARIOS)}")
    chosen = list(names) if names else list(SCENARIOS)
    return map_in_processes(_build_named, [(n, Path(folder)) for n in chosen], workers,
                            slow_first=[SCENARIOS[n].shape != "mlp" for n in chosen])


def _build_named(name: str, folder: Path) -> ZooCase:
    return build_scenario(SCENARIOS[name], folder)


def write_tiny_case(folder: Path) -> tuple[Path, Path]:
    """The cheapest real case: a 3-feature Dense regression (SGD, never fitted) and 64 rows of
    its data, for fleet tests and the scheduler benchmark, where the probes are not the point."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([1.0, 2.0, -1.0], dtype="float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.save(folder / "tiny.keras")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}),
                   folder / "tiny.parquet")
    return folder / "tiny.keras", folder / "tiny.parquet"
