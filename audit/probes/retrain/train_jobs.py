"""What the trainer trains and returns: a job, its log, one round's result, and the
interface every training backend offers (`Backend.train`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.subject.inputs import Feed


@dataclass
class TrainJob:
    """One training: the architecture, its starting weights, data, loss, optimizer, epoch count
    and shuffling seed.

    `model` only describes the network (jobs may share one model object; the trainer never
    changes its weights). `weights` are the starting values of `model.weights` (None: the
    model's current ones). `optimizer` is read for its config only, so jobs may share it too.
    """

    model: Any
    optimizer: Any
    loss: Any
    x: Feed  # the model's inputs as its call takes them (one array, a list or a dict)
    y: np.ndarray
    epochs: int
    seed: int
    sample_weight: np.ndarray | None = None
    shuffle: bool = True  # off only to compare with `model.fit(shuffle=False)` step for step
    weights: list[np.ndarray] | None = None
    x_val: Feed | None = None  # rows the model predicts after every chunk (validation)

    def start_weights(self) -> list[np.ndarray]:
        return self.weights if self.weights is not None else self.model.get_weights()


@dataclass
class TrainLog:
    """What happened to one job: epochs run, each chunk's last-epoch mean loss, why it stopped,
    the trained values of `model.weights` (set `model.set_weights(log.weights)` to use), and
    the trained model's outputs on the job's `x_val` (rows x outputs; None without `x_val`).

    The weights stay where training left them (a device snapshot) until `weights` is read:
    most jobs are judged by their outputs alone, so most are never copied to the host."""

    epochs_run: int = 0
    losses: list[float] = field(default_factory=list)
    stopped: str = "finished"  # finished | diverged | time_budget | what should_stop said
    outputs: np.ndarray | None = None
    weights_source: Callable[[], list[np.ndarray]] | None = field(default=None, repr=False)
    _weights: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def weights(self) -> list[np.ndarray]:
        """The trained weights as numpy arrays (copied from the device on first read)."""
        if self._weights is None:
            self._weights = self.weights_source() if self.weights_source is not None else []
            self.weights_source = None
        return self._weights


@dataclass
class Trained:
    """One job after one round of training: its loss, validation outputs and a way to read
    its weights (a snapshot taken at this moment, materialized on demand)."""

    loss: float
    outputs: np.ndarray | None
    weights: Callable[[], list[np.ndarray]]


class Backend:
    """One way of training some of the jobs (`members`, indices into the job list). The
    trainer only schedules: it asks each backend to train its running members for a number of
    epochs and judges what comes back; how the math is done is the backend's business."""

    members: list[int]

    def train(self, epochs: int, epoch0: int, active: list[bool]) -> dict[int, Trained]:
        raise NotImplementedError
