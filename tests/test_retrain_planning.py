"""Retrain planning on real (tiny, untrained) Keras models: the loss/head check, the plans and
what each declares (its fault, its control), and the two-change search."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit.evidence import keys
from audit.faults.training import head_problem
from audit.manifest.case import CaseSpec
from audit.probes.retrain import (
    Plan,
    RetrainSettings,
    combine,
    make_split,
    pair_plans,
    plan_variants,
)
from audit.subject import Subject, load_subject

ROWS = 120


def make_subject(folder: Path, name: str, units: int, activation: str | None, y: np.ndarray,
                 **training: Any) -> Subject:
    """A two-layer MLP saved as .keras with its data as Parquet, loaded as the audit would."""
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(len(y), 4)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(units, activation=activation)])
    model.save(folder / f"{name}.keras")
    columns = {f"x{i}": x[:, i] for i in range(4)} | {"y": y}
    pq.write_table(pa.table(columns), folder / f"{name}.parquet")
    spec = CaseSpec(name=name, model=str(folder / f"{name}.keras"),
                    data=str(folder / f"{name}.parquet"), label="y",
                    training={"batch_size": 32, **training})
    return load_subject(spec)


def plans_of(subject: Subject) -> dict[str, Plan]:
    settings = RetrainSettings()
    return {p.name: p for p in plan_variants(subject, make_split(subject, settings), settings)}


def classes(n: int) -> np.ndarray:
    return np.arange(ROWS) % n


# ---------------------------------------------------------------- head_problem


def test_head_problem_names_what_does_not_fit(tmp_path: Path) -> None:
    three = classes(3).astype(np.int64)
    one_sigmoid = make_subject(tmp_path, "a", 1, "sigmoid", three, loss="binary_crossentropy")
    assert head_problem(one_sigmoid) == "3 classes need 3 output units; the model has 1"
    softmax = make_subject(tmp_path, "b", 3, "softmax", three,
                           loss="sparse_categorical_crossentropy")
    assert head_problem(softmax) is None
    targets = np.linspace(-5, 5, ROWS).astype(np.float32)
    squashed = make_subject(tmp_path, "c", 1, "sigmoid", targets, loss="mse")
    assert head_problem(squashed) == "a sigmoid output cannot reach targets outside [0, 1]"
    fractions = (three / 4).astype(np.float32)  # ids / 4: read as continuous targets
    frac = make_subject(tmp_path, "d", 3, "softmax", fractions,
                        loss="sparse_categorical_crossentropy")
    assert frac.task == "regression"
    assert head_problem(frac) == ("loss sparse_categorical_crossentropy is for classification "
                                  "but the labels are continuous")
    wrong_units = make_subject(tmp_path, "e", 2, "softmax", three,
                               loss="sparse_categorical_crossentropy")
    assert head_problem(wrong_units) == "3 classes need 3 output units; the model has 2"


#: (units, head, loss, from_logits) -> does the check accept it, for 3 classes
KERAS_COMBOS = [
    (3, "softmax", "sparse_categorical_crossentropy", False, True),
    (3, "sigmoid", "categorical_crossentropy", False, True),  # Keras divides by the sum
    (3, "sigmoid", "sparse_categorical_crossentropy", False, True),  # softmax(log p) = p/sum
    (3, "softmax", "binary_crossentropy", False, True),  # per unit, on one-hot labels
    (3, "softmax", "mse", False, True),  # on one-hot labels
    (3, None, "sparse_categorical_crossentropy", True, True),
    (3, None, "categorical_crossentropy", False, False),  # linear outputs can be negative
    (3, "relu", "categorical_crossentropy", False, False),  # all-zero rows have no gradient
    (3, "softmax", "sparse_categorical_crossentropy", True, False),  # softmax twice
    (2, "softmax", "sparse_categorical_crossentropy", False, False),  # 2 units, 3 classes
]


@pytest.mark.parametrize(("units", "head", "loss", "logits", "fits"), KERAS_COMBOS)
def test_head_problem_follows_what_keras_computes(tmp_path: Path, units: int, head: str | None,
                                                  loss: str, logits: bool, fits: bool) -> None:
    """The check accepts a head and loss exactly where Keras trains them (its losses'
    source: the categorical cross-entropies normalize the outputs by their sum)."""
    subject = make_subject(tmp_path, "k", units, head, classes(3).astype(np.int64), loss=loss)
    subject = dataclasses.replace(
        subject, training=dataclasses.replace(subject.training, from_logits=logits))
    assert (head_problem(subject) is None) == fits, head_problem(subject)


def test_keras_normalizes_a_sigmoid_head_under_categorical_crossentropy() -> None:
    """What the rule reads off the Keras source, checked against Keras itself: outputs that
    do not sum to 1 give the loss of their normalized values; sparse labels the same."""
    import keras

    raw = np.array([[0.9, 0.6, 0.2], [0.1, 0.3, 0.8]], np.float32)  # sigmoid outputs
    one_hot = np.eye(3, dtype=np.float32)[[0, 2]]
    normalized = raw / raw.sum(axis=1, keepdims=True)
    cce = keras.losses.CategoricalCrossentropy()
    sparse = keras.losses.SparseCategoricalCrossentropy()
    expected = float(-np.mean(np.log(normalized[[0, 1], [0, 2]])))
    assert float(cce(one_hot, raw)) == pytest.approx(expected, rel=1e-5)
    assert float(sparse(np.array([0, 2]), raw)) == pytest.approx(expected, rel=1e-5)


def test_a_multi_unit_sigmoid_head_trains_under_categorical_crossentropy() -> None:
    """The accepted combination trains as well as softmax does on separable classes."""
    import keras

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 3, (3, 4))
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.normal(0, 1, (600, 4))).astype(np.float32)
    accuracy = {}
    for head in ("sigmoid", "softmax"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation=head)])
        model.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy")
        model.fit(x, np.eye(3)[y], epochs=20, batch_size=32, verbose=0)
        accuracy[head] = float(np.mean(np.argmax(model.predict(x, verbose=0), 1) == y))
    assert accuracy["sigmoid"] > 0.9 and accuracy["sigmoid"] > accuracy["softmax"] - 0.05


# ---------------------------------------------------------------- plan_variants


def test_every_plan_declares_its_fault_and_adam_its_rate_control(tmp_path: Path) -> None:
    targets = np.linspace(-1, 1, ROWS).astype(np.float32)
    at_typical = plans_of(make_subject(tmp_path, "t", 1, None, targets, optimizer="sgd",
                                       learning_rate=0.01, loss="mse", epochs=2))
    assert at_typical["adam"].control == keys.BASELINE  # the rate is the family's already
    assert at_typical["adam"].tests == "optimizer_stalled"
    assert at_typical["train_longer"].tests == "undertrained" and at_typical["train_longer"].suspect
    for plan in at_typical.values():
        if plan.name != keys.BASELINE:
            assert plan.tests or plan.also_fixes, plan.name
    far = plans_of(make_subject(tmp_path, "f", 1, None, targets, optimizer="sgd",
                                learning_rate=2.5, loss="mse"))
    control = far[far["adam"].control]
    assert control.learning_rate == pytest.approx(0.01) and control.tests == "lr_too_high"
    assert control.suspect
    near = plans_of(make_subject(tmp_path, "n", 1, None, targets, optimizer="sgd",
                                 learning_rate=0.05, loss="mse"))
    assert near["adam"].control == "lr_typical"
    assert near["lr_typical"].learning_rate == pytest.approx(0.01)
    adam = plans_of(make_subject(tmp_path, "m", 1, None, targets, optimizer="adam",
                                 learning_rate=1e-3, loss="mse"))
    assert "adam" not in adam and "lr_typical" not in adam
    # RMSprop is Adam-like (nothing but another rate to offer); FTRL's steps only shrink
    rmsprop = plans_of(make_subject(tmp_path, "r", 1, None, targets, optimizer="rmsprop",
                                    learning_rate=1e-3, loss="mse"))
    assert "adam" not in rmsprop
    ftrl = plans_of(make_subject(tmp_path, "f", 1, None, targets, optimizer="ftrl",
                                 learning_rate=1e-3, loss="mse"))
    assert ftrl["adam"].tests == "optimizer_stalled"
    assert ftrl[ftrl["adam"].control].learning_rate == pytest.approx(1e-2)  # FTRL's usual


def test_labels_a_classification_loss_cannot_read_get_a_repair_plan(tmp_path: Path) -> None:
    fractions = (classes(4) / 4).astype(np.float32)
    plans = plans_of(make_subject(tmp_path, "q", 4, "softmax", fractions,
                                  loss="sparse_categorical_crossentropy"))
    assert plans["repair_labels"].relabel == 4.0 and plans["repair_labels"].tests == "bad_data"
    assert "standardize_targets" not in plans  # negative ids would break the loss
    near = (classes(4) + np.random.default_rng(1).uniform(-0.01, 0.01, ROWS)).astype(np.float32)
    plans = plans_of(make_subject(tmp_path, "r", 4, "softmax", near,
                                  loss="sparse_categorical_crossentropy"))
    assert plans["repair_labels"].relabel == 1.0


# ---------------------------------------------------------------- the pair search


ADAM = Plan("adam", "sgd -> Adam", tests="optimizer_stalled", optimizer="adam",
            learning_rate=1e-3, epochs=2)
LONGER = Plan("train_longer", "2 -> 30 epochs", tests="undertrained", suspect=True, epochs=30)
LR_UP = Plan("lr_up_x10", "0.01 -> 0.1", tests="lr_too_low", learning_rate=0.1, epochs=2)
SCALE = Plan("standardize_inputs", "inputs standardized", tests="unscaled_inputs",
             suspect=True, standardize_inputs=True, epochs=2)
ACTS = Plan("nonsaturating", "ReLU", tests="saturated_activations", architecture="nonsaturating",
            epochs=2)
BASE = Plan(keys.BASELINE, "own", epochs=2)


def test_two_changes_combine_only_when_they_touch_different_things() -> None:
    pair = combine(ADAM, LONGER)
    assert pair is not None
    assert (pair.name, pair.parts) == ("adam+train_longer", ("adam", "train_longer"))
    assert (pair.optimizer, pair.learning_rate, pair.epochs) == ("adam", 1e-3, 30)
    assert combine(ADAM, LR_UP) is None  # both set the rate
    assert combine(SCALE, LR_UP).standardize_inputs  # type: ignore[union-attr]


def test_the_pair_search_takes_the_best_movers_and_the_suspects() -> None:
    singles = [BASE, ADAM, LR_UP, ACTS, LONGER, SCALE]
    skill = {keys.BASELINE: 0.0, "adam": 0.2, "lr_up_x10": 0.15, "nonsaturating": 0.1,
             "train_longer": 0.0, "standardize_inputs": -0.1}
    settings = RetrainSettings(pair_candidates=2, max_pairs=3)
    pairs = pair_plans(singles, skill, settings)
    # candidates: adam, lr_up (best movers) + the suspects train_longer, standardize_inputs
    assert [p.name for p in pairs] == ["adam+train_longer", "lr_up_x10+train_longer",
                                       "adam+standardize_inputs"]
    assert all(p.parts for p in pairs)
    assert "nonsaturating" not in {part for p in pairs for part in p.parts}
    assert len(pair_plans(singles, skill, RetrainSettings(max_pairs=1))) == 1


# ---------------------------------------------------------------- the learning-rate search


def rate_plans(own: float, rates: list[float]) -> list[Plan]:
    from audit.faults import rate_rung

    return [Plan(keys.BASELINE, "own")] + [rate_rung(own, r) for r in rates]


def test_the_rate_search_walks_down_while_training_still_diverges() -> None:
    from audit.probes.retrain import lr_walk

    settings = RetrainSettings()
    plans = rate_plans(0.01, [0.1, 0.001])
    nan = float("nan")
    walked = lr_walk(plans, {keys.BASELINE: nan, plans[1].name: nan, plans[2].name: nan},
                     0.01, settings)
    # down one decade; never up, since a faster rate does not end a divergence
    assert [p.learning_rate for p in walked] == [pytest.approx(1e-4)]
    assert walked[0].tests == "lr_too_high"
    # the next step of the walk, from the rung it just added, goes one decade farther
    plans += walked
    again = lr_walk(plans, {p.name: nan for p in plans}, 0.01, settings)
    assert [p.learning_rate for p in again] == [pytest.approx(1e-5)]


def test_the_rate_search_stops_at_skill_at_a_worse_rung_and_at_its_bounds() -> None:
    from audit.probes.retrain import lr_walk

    settings = RetrainSettings()
    plans = rate_plans(1e-5, [1e-4, 1e-3])
    up_near, up_far = plans[1].name, plans[2].name
    # the farthest rate already has skill: no farther, only half a decade back to refine
    refine = lr_walk(plans, {keys.BASELINE: 0.0, up_near: 0.1, up_far: 0.6}, 1e-5, settings)
    assert [p.learning_rate for p in refine] == [pytest.approx(10 ** -3.5)]
    assert lr_walk(plans, {keys.BASELINE: 0.0, up_near: 0.4, up_far: 0.6}, 1e-5, settings) == []
    # the farthest rate is worse than a nearer one: the search went past its best
    assert lr_walk(plans, {keys.BASELINE: 0.0, up_near: 0.2, up_far: 0.1}, 1e-5, settings) == []
    # still moving up and short of skill: one decade more
    walked = lr_walk(plans, {keys.BASELINE: 0.0, up_near: 0.05, up_far: 0.2}, 1e-5, settings)
    assert [p.learning_rate for p in walked] == [pytest.approx(1e-2)]
    assert walked[0].tests == "lr_too_low"
    # at most `lr_walk_decades` decades beyond the nearest rung
    far = rate_plans(1e-5, [1e-4, 1e-3, 1e-2, 1e-1])
    skills = {p.name: 0.06 * k for k, p in enumerate(far)}  # still improving at the end
    assert lr_walk(far, skills, 1e-5, settings) == []


def test_the_rate_search_refines_half_a_decade_back_from_the_first_rate_that_works() -> None:
    from audit.probes.retrain import lr_walk

    settings = RetrainSettings()
    plans = rate_plans(0.01, [0.1, 0.001, 1e-4])  # the walk went from 1e-3 to 1e-4
    skills = {keys.BASELINE: float("nan"), plans[1].name: float("nan"),
              plans[2].name: float("nan"), plans[3].name: 0.8}
    refined = lr_walk(plans, skills, 0.01, settings)
    assert [p.learning_rate for p in refined] == [pytest.approx(10 ** -3.5)]
    # once refined, the edge is known to half a decade: nothing more
    plans += refined
    skills[refined[0].name] = 0.1
    assert lr_walk(plans, skills, 0.01, settings) == []


def _stack(*activations: str, recurrent: bool = False) -> Any:
    import keras

    layers: list[Any] = [keras.Input((5, 4))]
    if recurrent:
        layers.append(keras.layers.LSTM(8))
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(8, activation=a, name=f"h{i}")
               for i, a in enumerate(activations)]
    return keras.Sequential([*layers, keras.layers.Dense(1)])


@pytest.mark.parametrize(("activations", "odd"), [
    (("relu", "softmax", "relu", "relu"), ("h1", "softmax", "relu")),
    (("exponential", "tanh", "tanh"), ("h0", "exponential", "tanh")),
    (("relu", "relu", "relu"), None),  # nothing out of line
    (("relu", "softmax"), None),  # too few layers to say which is out of line
    (("tanh", "relu", "relu", "tanh"), None),  # two designs, neither one layer
    (("relu", "sigmoid", "tanh", "relu"), None),  # three kinds: no one line to restore
])
def test_the_one_hidden_layer_out_of_line_is_found(activations: tuple[str, ...],
                                                   odd: tuple[str, str, str] | None) -> None:
    from audit.faults.network import odd_activation

    assert odd_activation(_stack(*activations)) == odd


def test_recurrent_gates_and_the_head_are_not_counted() -> None:
    """An LSTM's tanh and a sigmoid head are design: only hidden non-recurrent layers count."""
    from audit.faults.network import odd_activation

    # counted, the LSTM's tanh would be the one out of line among three ReLU layers
    assert odd_activation(_stack("relu", "relu", "relu", recurrent=True)) is None


def test_restoring_the_odd_layer_changes_that_layer_only(tmp_path: Path) -> None:
    from audit.faults.network import RESTORE_ACTIVATION
    from audit.probes.retrain.variants import plan_model

    model = _stack("relu", "softmax", "relu")
    plan = RESTORE_ACTIVATION.plan(architecture="restore_activation",
                                   activations=(("h1", "relu"),))
    clone = plan_model(SimpleNamespace(model=model), None, plan)  # type: ignore[arg-type]
    names = {layer.name: layer.get_config().get("activation") for layer in clone.layers}
    assert names["h0"] == names["h1"] == names["h2"] == "relu"
    assert model.get_layer("h1").get_config()["activation"] == "softmax"
