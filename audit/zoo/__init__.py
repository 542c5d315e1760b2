"""The scenario zoo: small Keras models on synthetic data, each with a known fault (two-change
bugs: a primary fault and a contributing one).

Used by the demo, the tests and the benchmarks. Every model is trained the ordinary way
(`compile` + `fit`) and saved. The plain MLP scenarios save `.keras` files with their data as
Parquet (`x0..xN`, label `y`); the production-shaped ones (named inputs with preprocessing
inside, CNN, LSTM, Conv1D, two heads, SavedModel exports) bring their own columns and formats.
The expected fault is what the scenario was built to show; the auditor must find it from
evidence.

One module per job: `data` (synthetic datasets), `builders` (the plain MLP scenarios), `shapes`
(the production-shaped ones), `scenarios` (the registry), `build` (training and saving to disk),
`pool` (worker processes), `auditing` (auditing the built zoo), `calibration` (confidence bins),
`tfrecords` (a dataset's rows as TFRecord shards).
Everything callers use is importable from here.
"""

from audit.zoo.auditing import audit_zoo, audit_zoo_seeds
from audit.zoo.build import ZooCase, build_scenario, build_zoo, write_tiny_case
from audit.zoo.builders import (
    SHARED_FACTOR_EPOCHS,
    SHARED_FACTOR_ROWS,
    WAVY_BATCH,
    WAVY_EPOCHS,
    WAVY_HIDDEN,
    WAVY_ROWS,
    WEAK_EPOCHS,
    WEAK_HIDDEN,
    WEAK_ROWS,
    mlp,
    opt,
)
from audit.zoo.calibration import CONFIDENCE_BINS, calibration, finding_is_right
from audit.zoo.datasets import shared_factor_regression, wavy_regression, weak_signal_binary
from audit.zoo.processes import map_in_processes
from audit.zoo.scenarios import SCENARIOS, Scenario, covered_faults
from audit.zoo.shapes import Built
from audit.zoo.tfrecords import as_tfrecords, write_tfrecords

__all__ = [
    "CONFIDENCE_BINS",
    "SCENARIOS",
    "SHARED_FACTOR_EPOCHS",
    "SHARED_FACTOR_ROWS",
    "WAVY_BATCH",
    "WAVY_EPOCHS",
    "WAVY_HIDDEN",
    "WAVY_ROWS",
    "WEAK_EPOCHS",
    "WEAK_HIDDEN",
    "WEAK_ROWS",
    "Built",
    "Scenario",
    "ZooCase",
    "as_tfrecords",
    "audit_zoo",
    "audit_zoo_seeds",
    "build_scenario",
    "build_zoo",
    "calibration",
    "covered_faults",
    "finding_is_right",
    "map_in_processes",
    "mlp",
    "opt",
    "shared_factor_regression",
    "wavy_regression",
    "weak_signal_binary",
    "write_tfrecords",
    "write_tiny_case",
]
