"""How long each counterfactual trains, and on how many rows: the original training's length in
optimizer steps, capped by a compute budget in training FLOPs.

A counterfactual asks "would this change have fixed the original training?", so it trains as
long as the original did: its epochs x rows / batch, in optimizer steps, whatever sample the
retrain probe draws. Only cost caps that: a training of a model with P parameters on R rows for
E epochs costs about 6 x P x R x E FLOPs (2 forward, 4 backward), and all of the probe's
trainings together get `max_flops`. A large model therefore trains its counterfactuals for fewer
steps, and on fewer rows when even a few epochs of the sample would overrun. The probe then
checks that its baseline still reproduces the symptom at that length (see `retrain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from audit.evidence.keys import Retrain
from audit.probes.base import ProbeSettings

FLOPS_PER_PARAM_ROW = 6.0  # multiply-adds of one training step per parameter per row


class LengthSettings(ProbeSettings):
    """What a counterfactual's length is chosen from (the retrain probe's settings extend it)."""

    epochs: int = Field(30, ge=1, description="epochs when the original's length is unknown")
    min_steps: int = Field(300, ge=0, description="unknown-length trainings run at least this")
    max_flops: float = Field(1e11, gt=0, description="training FLOPs of all trainings together")
    min_budget_steps: int = Field(100, ge=1, description="the budget never cuts below this")
    min_epochs: int = Field(3, ge=1, description="rows are cut so the budget covers this many")
    min_train_rows: int = Field(256, ge=1, description="rows are never cut below this")


@dataclass(frozen=True)
class Length:
    """The chosen length of every counterfactual (the baseline's too), and of `train_longer`."""

    epochs: int  # epochs over `train_rows` rows
    steps: int  # optimizer steps those epochs take
    train_rows: int  # training rows kept (the sample's, or fewer to fit the budget)
    wanted_steps: int  # the original training's steps (or the default), before the budget
    own_steps: int | None  # the original training's steps; None when its epochs are unknown
    longer_epochs: int  # the `train_longer` counterfactual's epochs (a default-length training)
    budget_steps: int  # the most steps the FLOP budget allows each training
    flops_per_training: float

    @property
    def cut_by_budget(self) -> bool:
        return self.budget_steps < self.wanted_steps

    def metrics(self) -> dict[str, float]:
        """The length's figures for the retrain probe's metrics."""
        return {Retrain.LENGTH_STEPS.metric: float(self.steps),
                "length.epochs": float(self.epochs),
                "length.train_rows": float(self.train_rows),
                Retrain.WANTED_STEPS.metric: float(self.wanted_steps),
                "length.own_steps": float(self.own_steps) if self.own_steps else float("nan"),
                "length.budget_steps": float(self.budget_steps),
                Retrain.CUT_BY_BUDGET.metric: float(self.cut_by_budget),
                "length.flops_per_training": self.flops_per_training}


def training_flops(params: int, rows: int, epochs: float) -> float:
    """Approximate FLOPs of training `params` parameters on `rows` rows for `epochs` epochs."""
    return FLOPS_PER_PARAM_ROW * params * rows * epochs


def plan_length(params: int, train_rows: int, full_rows: int, batch_size: int,
                own_epochs: int | None, trainings: int, settings: LengthSettings) -> Length:
    """Each counterfactual's epochs and training rows.

    `train_rows` is the sample's training rows, `full_rows` the table's, `own_epochs` the
    original training's epochs (None: unknown) and `trainings` how many trainings the budget
    must cover (the full plan x seed grid: racing only ever spends less)."""
    batch = max(1, batch_size)
    per_epoch = math.ceil(train_rows / batch)
    default_steps = max(settings.epochs * per_epoch, settings.min_steps)
    own_steps = math.ceil(own_epochs * full_rows / batch) if own_epochs else None
    wanted = own_steps if own_steps is not None else default_steps
    step_flops = FLOPS_PER_PARAM_ROW * max(params, 1) * batch * max(trainings, 1)
    budget_steps = max(settings.min_budget_steps, int(settings.max_flops // step_flops))
    steps = min(wanted, budget_steps)
    rows = train_rows
    if steps * batch < settings.min_epochs * train_rows:  # whole epochs would overrun: cut rows
        rows = min(train_rows, max(settings.min_train_rows, steps * batch // settings.min_epochs))
    per_epoch = math.ceil(rows / batch)
    epochs = max(1, round(steps / per_epoch))
    longer = max(1, round(min(default_steps, budget_steps) / per_epoch))
    return Length(epochs=epochs, steps=epochs * per_epoch, train_rows=rows, wanted_steps=wanted,
                  own_steps=own_steps, longer_epochs=longer, budget_steps=budget_steps,
                  flops_per_training=training_flops(params, rows, epochs))
