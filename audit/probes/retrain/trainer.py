"""A compiled training loop for many short trainings of small models.

The retraining probe runs a dozen or more short trainings of tiny models. With `model.fit`,
per-epoch Python overhead dominates; with one `tf.function` per model, tracing does (Keras
layers are slow to trace, and every clone has its own variables). Two backends, one interface
(`Backend.train(epochs, epoch0, active) -> {job: Trained}`), and a scheduler that knows neither:
- `StackedBackend`: plain Dense stacks of one shape train stacked as one `Ensemble` (see
  `ensemble.py`): every seed and every variant in one small graph, whatever their activations
  and optimizers; a later call (the race's next round) whose jobs fit that graph reuses it;
- `GraphBackend`: any other model trains in one graph per architecture (with optimizer family
  and loss), shared by every job that has that architecture: the job's weights and optimizer
  state are swapped into the traced template's variables and out (as device snapshots). The
  learning rate is optimizer state, so a learning-rate ladder costs no retrace either.
Weights reach the host only when a `TrainLog.weights` is read.
Both run whole epochs in a `tf.while_loop`, the data kept on the device and shuffled by a
stateless seed, and all ensembles run in one `tf.function`. Training pauses between chunks of
epochs so a job can stop early (clear success, divergence, the time budget)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from audit.probes.retrain.ensemble import stack_key
from audit.probes.retrain.graph_backend import GraphBackend
from audit.probes.retrain.stacked_backend import StackedBackend
from audit.probes.retrain.train_jobs import Backend, Trained, TrainJob, TrainLog

__all__ = ["TrainJob", "TrainLog", "chunk_bounds", "train_together"]


def chunk_bounds(epochs: list[int], chunks: int) -> list[int]:
    """Epoch counts at which training pauses: every chunk, and wherever some job ends."""
    longest = max(epochs)
    step = max(1, math.ceil(longest / max(chunks, 1)))
    return sorted({*range(step, longest, step), *epochs, longest})


def train_together(
    jobs: list[TrainJob],
    batch_size: int,
    chunks: int = 4,
    deadline: float | None = None,
    should_stop: Callable[[int, TrainLog], str | None] | None = None,
    graphs: dict[tuple[Any, ...], Any] | None = None,
) -> list[TrainLog]:
    """Train every job for its epochs, checking between chunks whether a job should stop.

    Plain Dense stacks sharing layer shapes, loss and data shapes train stacked as one
    `Ensemble` (whatever their activations, optimizer families, learning rates and clipping);
    any other model trains in a traced graph shared with its look-alikes.
    `should_stop(i, log)` is called after each chunk for each job still running (its log holds
    the weights and validation outputs so far) and returns a reason (e.g. "early_success") or
    None to go on.
    Past `deadline` (a `time.monotonic()` value) every job stops with "time_budget".
    `graphs` keeps the traced graphs between calls (pass the same dict to train more jobs of
    the same architectures without tracing again: the per-architecture graphs, and the
    stacked ensembles while later jobs fit their members, optimizer families and
    activations).
    """

    logs = [TrainLog(weights_source=job.start_weights) for job in jobs]
    if not jobs:
        return logs
    groups: dict[tuple[Any, ...], list[int]] = {}
    singles: list[int] = []
    for i, job in enumerate(jobs):
        key = stack_key(job)
        if key is None:
            singles.append(i)
        else:
            groups.setdefault(key, []).append(i)
    graphs = {} if graphs is None else graphs
    backends: list[Backend] = []
    if groups:
        backends.append(StackedBackend(jobs, groups, batch_size, graphs))
    if singles:
        backends.append(GraphBackend(jobs, singles, batch_size, graphs))
    active = [True] * len(jobs)
    done = 0

    def record(i: int, trained: Trained, upto: int) -> None:
        log = logs[i]
        log.losses.append(trained.loss)
        log.epochs_run = upto
        log.outputs, log.weights_source, log._weights = trained.outputs, trained.weights, None
        if not math.isfinite(trained.loss):
            log.stopped, active[i] = "diverged", False
        elif upto >= jobs[i].epochs:
            active[i] = False
        elif should_stop is not None and (reason := should_stop(i, log)):
            log.stopped, active[i] = reason, False

    for bound in chunk_bounds([job.epochs for job in jobs], chunks):
        if not any(active):
            break
        for backend in backends:
            for i, trained in backend.train(bound - done, done, active).items():
                record(i, trained, bound)
        done = bound
        if deadline is not None and time.monotonic() > deadline:
            for i in (i for i, a in enumerate(active) if a):
                logs[i].stopped = "time_budget"
            break
    return logs
