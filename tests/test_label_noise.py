"""Noisy labels by confident learning: near zero on clean labels however imbalanced, near the
truth where part of a class was relabelled at random, examples that are truly relabelled,
row indices of the rows given, and a bounded cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.evidence import keys
from audit.probes.retrain.label_noise import LabelNoiseSettings, label_issues
from audit.subject.inputs import InputArray, Inputs


def numeric(x: np.ndarray) -> Inputs:
    return Inputs((InputArray("x", "numeric", x, tuple(f"c{j}" for j in range(x.shape[1]))),))


def blobs(n: int, weights: list[float], sep: float, seed: int,
          d: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes with unit spread around centres drawn with spread `sep`."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (len(weights), d))
    y = rng.choice(len(weights), n, p=np.array(weights) / sum(weights))
    return centres[y] + rng.normal(0, 1, (n, d)), y


def relabel(y: np.ndarray, cls: int, share: float, classes: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`share` of class `cls`'s rows given another class at random: (labels, rows changed)."""
    rng = np.random.default_rng(seed + 100)
    members = np.flatnonzero(y == cls)
    flipped = rng.choice(members, round(share * len(members)), replace=False)
    noisy = y.copy()
    noisy[flipped] = rng.choice([c for c in range(classes) if c != cls], len(flipped))
    return noisy, flipped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_labels_with_a_5_percent_minority_are_not_noise(seed: int) -> None:
    """A 95/5 split with the classes apart, and one where they overlap (the linear learner
    errs on about 4% of the rows): imbalance and overlap alone flag at most 2-3% of rows."""
    x, y = blobs(4000, [0.95, 0.05], 1.0, seed)
    apart = label_issues(numeric(x), y, 2, LabelNoiseSettings(seed=seed))
    assert apart.rows_checked == 4000
    assert apart.share < 0.015, apart
    x, y = blobs(4000, [0.95, 0.05], 0.5, seed)
    overlapping = label_issues(numeric(x), y, 2, LabelNoiseSettings(seed=seed))
    assert overlapping.share < 0.03, overlapping


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_30_percent_of_one_class_relabelled_is_estimated_near_the_truth(seed: int) -> None:
    """Three classes, 30% of class 0 given class 1 or 2 at random: 10% of the rows. The
    estimate is near that; the clean labels of the same rows score about zero; the examples
    are rows that were relabelled."""
    x, clean = blobs(4000, [1.0, 1.0, 1.0], 1.0, seed)
    noisy, flipped = relabel(clean, 0, 0.3, 3, seed)
    truth = float(np.mean(noisy != clean))
    found = label_issues(numeric(x), noisy, 3, LabelNoiseSettings(seed=seed))
    assert abs(found.share - truth) < 0.025, (found.share, truth)
    assert found.count == pytest.approx(found.share * 4000)
    assert len(found.examples) == 10
    assert len(set(found.examples) & set(flipped.tolist())) >= 9, found.examples
    assert label_issues(numeric(x), clean, 3, LabelNoiseSettings(seed=seed)).share < 0.03


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_classes_one_relabelled_is_found_if_underestimated(seed: int) -> None:
    """Two classes, 30% of class 0 given class 1 (15% of rows, and a 35/65 split that looks
    like imbalance by the counts): confident learning is conservative here, measured at 0.68
    to 0.89 of the truth, far from the clean labels' estimate."""
    x, clean = blobs(4000, [1.0, 1.0], 1.0, seed)
    noisy, _ = relabel(clean, 0, 0.3, 2, seed)
    truth = float(np.mean(noisy != clean))
    found = label_issues(numeric(x), noisy, 2, LabelNoiseSettings(seed=seed))
    assert 0.6 * truth < found.share < 1.1 * truth, (found.share, truth)
    assert label_issues(numeric(x), clean, 2, LabelNoiseSettings(seed=seed)).share < 0.03


def test_rows_are_sampled_to_the_cap_and_examples_index_the_rows_given() -> None:
    """12,000 rows, the cap at 3,000, two rows with a non-finite input: the check reads 3,000
    finite rows, and each example is an index into the 12,000 (its label was changed)."""
    x, clean = blobs(12_000, [1.0, 1.0, 1.0], 1.5, seed=4)
    noisy, flipped = relabel(clean, 2, 0.3, 3, seed=4)
    x[[5, 7]] = np.nan
    found = label_issues(numeric(x), noisy, 3, LabelNoiseSettings(max_rows=3000, seed=4))
    assert found.rows_checked == 3000
    assert found.examples and set(found.examples) <= set(flipped.tolist())
    assert 5 not in found.examples and 7 not in found.examples
    assert found.seconds < 5.0  # about 0.2 s on one core; the bound is for a loaded machine
    assert found.details()[keys.LABEL_ISSUE_ROWS] == list(found.examples)
    assert found.details()[keys.LABEL_ISSUE_SECONDS] >= 0
    assert set(found.metrics()) == {keys.Retrain.LABEL_ISSUE_SHARE.metric,
                                    keys.Retrain.LABEL_ISSUES.metric,
                                    keys.Retrain.LABEL_ROWS_CHECKED.metric,
                                    keys.Retrain.REFERENCE_ERROR.metric,
                                    keys.Retrain.DISPUTED_LABEL_PROBABILITY.metric}


def test_it_says_nan_when_fewer_than_two_classes_can_be_judged() -> None:
    """A class with fewer rows than folds cannot be cross-validated and is left out; with
    one class left, the check cannot say."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (300, 4))
    y = np.zeros(300, dtype=np.int64)
    y[:3] = 1  # three rows of class 1: fewer than five folds
    found = label_issues(numeric(x), y, 2)
    assert np.isnan(found.share) and found.examples == ()
    y_float = np.where(np.arange(300) < 150, 0.0, 1.0)
    y_float[::10] = np.nan  # unlabelled rows are left out, the rest judged
    judged = label_issues(numeric(x), y_float, 2)
    assert judged.rows_checked == 270 and np.isfinite(judged.share)


def test_a_failing_check_leaves_nan_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failure injection: the check is an extra beside the reference, so a raise inside it
    (cleanlab, scikit-learn) must not cost the retrain probe its counterfactuals."""
    from audit.probes.retrain import label_noise

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("pool  cannot\nstart")

    monkeypatch.setattr(label_noise, "label_issues", broken)
    found, details = label_noise.for_rows(None, np.zeros(12), "binary", 2,  # type: ignore
                                          seed=0)
    assert found is not None and math.isnan(found.metrics()[
        keys.Retrain.LABEL_ISSUE_SHARE.metric])
    assert found.flagged == () and found.suggested == ()
    assert details == {label_noise.LABEL_ISSUE_ERROR: "RuntimeError: pool cannot start"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_a_relabelling_took_from_a_class_are_given_back(seed: int) -> None:
    """70% of class 0 given class 1 or 2 at random: class 0 is outnumbered even where its
    rows are, so a plain prediction keeps the wrong labels. With the class counts divided
    out, most relabelled rows are given class 0 back; clean rows near class 0 are given it
    too (overlap, about a sixth of them here), which is why the counterfactual that trains on
    these labels is scored on the given ones."""
    x, clean = blobs(1500, [1.0, 1.0, 1.0], 1.2, seed, d=6)
    noisy, flipped = relabel(clean, 0, 0.7, 3, seed)
    found = label_issues(numeric(x), noisy, 3, LabelNoiseSettings(seed=seed))
    rows = np.array(found.flagged)
    given_back = dict(zip(found.flagged, found.suggested, strict=True))
    restored = np.mean([given_back.get(int(r)) == 0 for r in flipped])
    assert restored > 0.7, restored
    touched_clean = np.setdiff1d(rows, flipped).size / (len(clean) - len(flipped))
    assert touched_clean < 0.25, touched_clean
    assert np.isin(rows, flipped).mean() > 0.5  # most rows given another class were moved
    assert all(s != noisy[r] for r, s in zip(found.flagged, found.suggested, strict=True))
