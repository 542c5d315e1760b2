"""What the data probe reads off labels a classification loss cannot use: ids over a scale
(small or large) against integers with round-off."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.evidence.keys import Data
from audit.probes.data import DataSettings, label_checks

SCALE, NEAR = Data.LABEL_FRACTION_SCALE.metric, Data.LABEL_NEAR_INTEGER.metric


def _ids(classes: int, rows: int = 600, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, rows).astype(np.float64)


@pytest.mark.parametrize(("classes", "scale"), [(4, 4), (4, 255), (10, 255), (3, 1000)])
def test_ids_over_a_scale_are_read_as_a_scale_not_as_round_off(classes: int,
                                                               scale: int) -> None:
    """ids / 255 all lie within 0.04 of 0: read as round-off they would round into one class."""
    checks = label_checks((_ids(classes) / scale).astype(np.float32), "regression",
                          DataSettings())
    assert checks[SCALE] == scale
    assert checks[NEAR] == 0.0


def test_integers_with_round_off_are_near_integers() -> None:
    noisy = _ids(4) + np.random.default_rng(1).uniform(-0.01, 0.01, 600)
    checks = label_checks(noisy.astype(np.float32), "regression", DataSettings())
    assert math.isnan(checks[SCALE])
    assert checks[NEAR] > 0.9


def test_a_few_near_integers_fit_no_compact_scale() -> None:
    """{0.999, 2.001, 3} fit k = 1000 only as ids in the thousands: round-off, not a scale."""
    labels = np.array([0.999, 2.001, 3.0] * 100)
    checks = label_checks(labels, "regression", DataSettings())
    assert math.isnan(checks[SCALE])
    assert checks[NEAR] == pytest.approx(2 / 3)


def test_integer_ids_are_neither() -> None:
    checks = label_checks(_ids(5), "multiclass", DataSettings())
    assert math.isnan(checks[SCALE])
    assert checks[NEAR] == 0.0
