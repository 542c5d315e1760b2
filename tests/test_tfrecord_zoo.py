"""The same fleet from Parquet and from gzipped TFRecord shards of the same rows: every zoo case
loads into the same subject (inputs, labels, task, classes, rows in the file), so the audit,
deterministic given its inputs, gives the same verdict; two cases (a flat MLP whose fault a
retraining confirms, a healthy model with named numeric and string inputs) are audited end to
end from both formats to show it. `benchmarks/tfrecord_verdicts.py` audits the whole zoo both
ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.engine import audit_case
from audit.manifest.case import CaseSpec
from audit.models.load import load_model
from audit.subject.assemble import subject_of
from audit.zoo.tfrecords import as_tfrecords


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    """The same values of the same dtype, NaN where NaN: both sides are read from files, so
    exact."""
    return a.dtype == b.dtype and bool(np.array_equal(  # exact: values read back
        a, b, equal_nan=a.dtype.kind == "f"))


def differences(a: Any, b: Any) -> list[str]:
    """What differs between two subjects of one model (empty: none)."""
    found = [f for f in ("task", "n_classes", "class_names", "label_name", "rows_in_file",
                         "rows_in_file_estimated", "malformed_cells", "label_nan_rows")
             if getattr(a, f) != getattr(b, f)]
    if not identical(a.y, b.y):
        found.append("y")
    if a.inputs.names != b.inputs.names:
        return [*found, "inputs"]
    for x, z in zip(a.inputs.arrays, b.inputs.arrays, strict=True):
        if (x.kind, x.columns, x.normalized) != (z.kind, z.columns, z.normalized) or \
                not identical(x.values, z.values):
            found.append(f"input {x.name}")
    return found


def test_every_zoo_case_loads_the_same_from_gzipped_shards(zoo_cases: dict[str, Any],
                                                          tmp_path: Path) -> None:
    differ = {}
    for name, case in zoo_cases.items():
        shards = as_tfrecords(case.data_path, tmp_path / name, shards=2)
        spec = CaseSpec(**case.spec_fields())
        loaded = load_model(spec.model)
        parquet, _ = subject_of(spec, loaded)
        tfrecord, _ = subject_of(spec.model_copy(update={"data": shards}), loaded)
        if found := differences(parquet, tfrecord):
            differ[name] = found
    assert len(zoo_cases) >= 40 and not differ, differ


@pytest.mark.parametrize("name", ["regression_unscaled_targets", "structured_healthy"])
def test_a_case_audits_to_the_same_verdict_from_both_formats(zoo_cases: dict[str, Any],
                                                             tmp_path: Path, name: str) -> None:
    case = zoo_cases[name]
    spec = CaseSpec(**case.spec_fields())
    shards = as_tfrecords(case.data_path, tmp_path, shards=4)
    parquet, tfrecord = audit_case(spec), audit_case(spec.model_copy(update={"data": shards}))
    assert parquet.status == tfrecord.status == "ok", tfrecord.error
    assert (tfrecord.verdict, tfrecord.primary_fault) == (parquet.verdict, parquet.primary_fault)
    assert parquet.primary_fault == case.expected_fault  # each case shows what it was built to
    assert tfrecord.data == shards
