"""How long a counterfactual trains: the original's length in steps, capped by the FLOP budget
(`audit.probes.retrain.budget.plan_length`, a pure function of the model's and data's sizes)."""

from __future__ import annotations

import math

from audit.probes.retrain.budget import LengthSettings, plan_length, training_flops

SETTINGS = LengthSettings()


def test_a_small_model_trains_as_long_as_its_original_training() -> None:
    # 20 epochs over 2,000 rows at batch 32 are 1,260 steps; the sample has 1,536 rows
    length = plan_length(params=1_600, train_rows=1_536, full_rows=2_000, batch_size=32,
                         own_epochs=20, trainings=27, settings=SETTINGS)
    assert length.own_steps == math.ceil(20 * 2_000 / 32)
    assert not length.cut_by_budget
    assert length.train_rows == 1_536
    assert length.epochs == round(length.own_steps / 48)  # 48 steps per epoch of the sample
    assert abs(length.steps - length.own_steps) <= 48 / 2


def test_a_long_original_training_is_not_capped_at_a_fixed_epoch_count() -> None:
    # 200 epochs on 300 rows: far beyond the default 30 epochs, and cheap for a tiny model
    length = plan_length(params=200, train_rows=225, full_rows=300, batch_size=32,
                         own_epochs=200, trainings=27, settings=SETTINGS)
    assert length.epochs == round(math.ceil(200 * 300 / 32) / math.ceil(225 / 32))
    assert length.epochs > SETTINGS.epochs
    assert not length.cut_by_budget


def test_an_unknown_length_uses_the_default_epochs_and_at_least_min_steps() -> None:
    length = plan_length(params=1_600, train_rows=1_536, full_rows=2_000, batch_size=32,
                         own_epochs=None, trainings=27, settings=SETTINGS)
    assert length.own_steps is None
    assert length.epochs == SETTINGS.epochs
    tiny = plan_length(params=1_600, train_rows=90, full_rows=120, batch_size=32,
                       own_epochs=None, trainings=27, settings=SETTINGS)
    assert tiny.steps >= SETTINGS.min_steps  # 3 steps per epoch: 100 epochs, not 30


def test_a_large_model_is_cut_to_the_flop_budget_on_fewer_rows() -> None:
    # 3 x 1024 (2.1M parameters), 50,000 rows x 10 epochs: 15,625 steps originally
    length = plan_length(params=2_118_657, train_rows=1_536, full_rows=50_000, batch_size=32,
                         own_epochs=10, trainings=24, settings=SETTINGS)
    assert length.cut_by_budget
    assert length.budget_steps == SETTINGS.min_budget_steps  # the budget never cuts below it
    assert length.steps < length.wanted_steps
    # rows are cut so that the budget's steps still cover min_epochs whole epochs
    assert length.train_rows < 1_536
    assert length.epochs >= SETTINGS.min_epochs
    assert length.flops_per_training == training_flops(2_118_657, length.train_rows,
                                                       length.epochs)


def test_the_budget_bounds_every_training_together_above_the_floor() -> None:
    settings = LengthSettings(max_flops=5e10)
    length = plan_length(params=70_401, train_rows=1_536, full_rows=20_000, batch_size=32,
                         own_epochs=10, trainings=15, settings=settings)
    assert length.cut_by_budget
    assert length.budget_steps > settings.min_budget_steps
    # whole epochs round the steps by at most half an epoch
    per_epoch = math.ceil(length.train_rows / 32)
    assert length.steps <= length.budget_steps + per_epoch / 2
    spent = 15 * 6 * 70_401 * 32 * length.steps
    assert spent <= settings.max_flops * (1 + per_epoch / 2 / length.budget_steps)
