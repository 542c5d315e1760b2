"""The linear attainable-skill reference: close to the truth where the truth is known, about
zero on noise, positive where a majority guess scores zero, and every input kind used."""

from __future__ import annotations

import numpy as np
import pytest

from audit.probes.outcomes import balanced_accuracy_gain
from audit.probes.retrain.reference import ReferenceSettings, design, linear_reference
from audit.subject.inputs import InputArray, Inputs
from audit.zoo import shared_factor_regression, weak_signal_binary


def numeric(x: np.ndarray, name: str = "x") -> Inputs:
    return Inputs((InputArray(name, "numeric", x, tuple(f"c{j}" for j in range(x.shape[1]))),))


def halves(n: int) -> tuple[slice, slice]:
    return slice(0, n // 2), slice(n // 2, n)


def test_a_linear_problem_reaches_the_truths_r2() -> None:
    rng = np.random.default_rng(0)
    n, d = 2000, 20
    # raw scales and offsets: the reference standardizes them itself
    x = rng.normal(0, 1, (n, d)) * rng.uniform(0.01, 500, d) + rng.uniform(-1e3, 1e3, d)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    signal = z @ rng.normal(0, 1, d)
    y = signal + rng.normal(0, 0.5 * signal.std(), n)
    truth = signal.var() / y.var()  # about 0.8: what the exact linear function attains
    tr, va = halves(n)
    ref = linear_reference(numeric(x[tr]), y[tr], numeric(x[va]), y[va], "regression", 0)
    assert abs(ref - truth) < 0.05, (ref, truth)


def test_as_many_columns_as_rows_does_not_overfit() -> None:
    """The zoo's 500 correlated features on 450 training rows: the target is their mean plus
    noise (R^2 about 0.92 attainable); a fixed tiny ridge penalty overfits to about 0.7, the
    cross-validated one gets close to the truth."""
    x, y = shared_factor_regression(950, seed=3)
    tr, va = slice(0, 450), slice(450, 950)
    ref = linear_reference(numeric(x[tr]), y[tr], numeric(x[va]), y[va], "regression", 0)
    assert ref > 0.85, ref


def test_multi_column_targets_are_scored_together() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (1000, 5))
    y = np.stack([x[:, 0] * 2, x[:, 1] - x[:, 2]], axis=1) + rng.normal(0, 0.1, (1000, 2))
    tr, va = halves(1000)
    ref = linear_reference(numeric(x[tr]), y[tr], numeric(x[va]), y[va], "regression", 0)
    assert ref > 0.98


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_pure_noise_gets_about_zero(task: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (1200, 30))
    y = rng.normal(0, 1, 1200) if task == "regression" else (rng.random(1200) < 0.3) * 1.0
    tr, va = halves(1200)
    ref = linear_reference(numeric(x[tr]), y[tr], numeric(x[va]), y[va], task, 2)
    assert -0.15 < ref < 0.1, ref


def test_a_weak_signal_95_5_problem_is_clearly_above_a_majority_guess() -> None:
    """The zoo's weak-signal data: a majority guess scores 0; the balanced reference gets
    close to the best possible gain (about 0.42)."""
    x, y = weak_signal_binary(4000, seed=5, positives=0.05)
    tr, va = halves(4000)
    majority = balanced_accuracy_gain(y[va], np.zeros(len(y[va]), dtype=np.int64), 2)
    ref = linear_reference(numeric(x[tr]), y[tr], numeric(x[va]), y[va], "binary", 2)
    assert majority == 0.0  # exact: a constant guess recalls one class fully, the other not
    assert 0.25 < ref < 0.5, ref


def test_a_label_that_is_a_function_of_a_string_column_gets_high_skill() -> None:
    rng = np.random.default_rng(3)
    cities = np.array([f"city_{k}" for k in range(12)], dtype=object)
    city = cities[rng.integers(0, 12, 1500)]
    label = np.array([int(c.split("_")[1]) % 3 for c in city])  # 3 classes from the name
    arr = Inputs((InputArray("city", "categorical", city, ("city",)),))
    tr, va = halves(1500)
    ref = linear_reference(arr.take(tr), label[tr], arr.take(va), label[va], "multiclass", 3)
    assert ref > 0.95, ref
    # a city never seen in training is all zeros, not an error
    unseen = Inputs((InputArray("city", "categorical",
                                np.array(["atlantis"] * 10 + list(city[va][10:]), dtype=object),
                                ("city",)),))
    assert linear_reference(arr.take(tr), label[tr], unseen, label[va], "multiclass", 3) > 0.9


def test_a_multi_input_set_uses_every_input() -> None:
    """Numeric, categorical and token inputs each carry part of the target: the reference
    on all of them beats the numeric input alone by far."""
    rng = np.random.default_rng(4)
    n = 2000
    num = rng.normal(0, 1, (n, 3))
    shops = np.array(["north", "south", "east", "west"], dtype=object)
    shop = shops[rng.integers(0, 4, n)]
    tokens = rng.integers(1, 50, (n, 8))
    shop_effect = {"north": 2.0, "south": -2.0, "east": 0.5, "west": -0.5}
    y = (num[:, 0] + np.array([shop_effect[s] for s in shop])
         + 4.0 * np.mean(tokens < 10, axis=1) + rng.normal(0, 0.2, n))
    full = Inputs((InputArray("num", "numeric", num, ("a", "b", "c")),
                   InputArray("shop", "categorical", shop, ("shop",)),
                   InputArray("words", "tokens", tokens, ("words",))), structure="dict")
    tr, va = halves(n)
    everything = linear_reference(full.take(tr), y[tr], full.take(va), y[va], "regression", 0)
    only_numeric = linear_reference(numeric(num[tr]), y[tr], numeric(num[va]), y[va],
                                    "regression", 0)
    assert everything > 0.85, everything
    assert everything - only_numeric > 0.4, (everything, only_numeric)


def test_a_wide_image_is_pooled_to_the_width_cap_and_still_read() -> None:
    rng = np.random.default_rng(6)
    n = 1200
    labels = rng.integers(0, 2, n)
    images = rng.normal(0, 1, (n, 40, 40)) + 0.05 * labels[:, None, None]  # a faint brightening
    x = Inputs((InputArray("image", "tensor", images, ("image",)),))
    tr, va = halves(n)
    settings = ReferenceSettings(max_columns=256)
    a_train, a_val = design(x.take(tr), x.take(va), settings)
    assert a_train.shape == (n // 2, 257) and a_val.shape == (n // 2, 257)  # + intercept
    ref = linear_reference(x.take(tr), labels[tr], x.take(va), labels[va], "binary", 2,
                           settings)
    assert 0.45 < ref < 0.75, ref  # the best possible gain is 2 * Phi(1) - 1 = 0.68


def test_non_finite_values_become_zero_after_standardizing() -> None:
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    x[3, 0], x[5, 1] = np.nan, np.inf
    a_train, a_val = design(numeric(x), numeric(x))
    assert np.all(np.isfinite(a_train)) and np.all(np.isfinite(a_val))
    assert a_train[3, 0] == 0.0 and a_train[5, 1] == 0.0  # exact: set to zero, not computed
    # the other rows are standardized by the finite values of their column
    for col, bad in ((0, 3), (1, 5)):
        rest = np.delete(a_train[:, col], bad)
        assert abs(rest.mean()) < 1e-9 and abs(rest.std() - 1) < 1e-9


def test_it_says_nan_when_it_cannot_say() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (100, 3))
    one_class = np.ones(100)
    assert np.isnan(linear_reference(numeric(x), one_class, numeric(x), one_class, "binary", 2))
    empty = numeric(np.zeros((0, 3)))
    assert np.isnan(linear_reference(empty, np.zeros(0), numeric(x), x[:, 0], "regression", 0))
    nan_targets = np.full(100, np.nan)
    assert np.isnan(linear_reference(numeric(x), nan_targets, numeric(x), x[:, 0],
                                     "regression", 0))


def test_a_class_absent_from_training_is_never_predicted() -> None:
    """Three declared classes, the third only in validation: the score still reads every
    class (finite), the absent one is never chosen, and the two seen classes are told apart."""
    rng = np.random.default_rng(8)
    n = 900
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 4)) + 3.0 * np.eye(3, 4)[y]
    train = np.flatnonzero(y < 2)[:400]
    val = np.arange(n)[~np.isin(np.arange(n), train)]
    ref = linear_reference(numeric(x[train]), y[train], numeric(x[val]), y[val],
                           "multiclass", 3)
    # recalls 1, 1, 0 over three present classes: gain (2/3 - 1/3) / (2/3) = 0.5 at best
    assert 0.45 < ref <= 0.5, ref


def test_the_logistic_penalty_is_per_row() -> None:
    """The same rows repeated twice fit the same model: the penalty scales with the rows."""
    from audit.probes.retrain.reference import classifier

    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, (300, 3))
    y = (x[:, 0] + rng.normal(0, 1, 300) > 0).astype(np.int64)
    settings = ReferenceSettings(l2=0.1)
    once = classifier(300, settings).fit(x, y)
    twice = classifier(600, settings).fit(np.vstack([x, x]), np.concatenate([y, y]))
    np.testing.assert_allclose(once.coef_, twice.coef_, atol=1e-3)
    # a stronger penalty per row shrinks the weights
    strong = classifier(300, ReferenceSettings(l2=10.0)).fit(x, y)
    assert np.abs(strong.coef_).sum() < 0.5 * np.abs(once.coef_).sum()
