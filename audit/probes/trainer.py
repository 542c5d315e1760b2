"""A compiled loop that trains several small models side by side in one TensorFlow graph.

The retraining probe runs a dozen or more short trainings of tiny models. With `model.fit`,
per-epoch Python overhead dominates; here every job's data lives on the device as tensors, each
epoch shuffles by a stateless seed, and one `tf.function` runs whole epochs of every still-active
job. Jobs can be stopped between chunks (clear success, divergence, time budget) without
retracing: an `active` mask decides inside the graph which jobs take a step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrainJob:
    """One model to train: its data, loss, optimizer, epoch count and shuffling seed."""

    model: Any
    optimizer: Any
    loss: Any
    x: np.ndarray
    y: np.ndarray
    epochs: int
    seed: int
    sample_weight: np.ndarray | None = None


@dataclass
class TrainLog:
    """What happened to one job: epochs run, last epoch's mean loss, why it stopped."""

    epochs_run: int = 0
    losses: list[float] = field(default_factory=list)
    stopped: str = "finished"  # finished | early_success | diverged | time_budget


def _build_runner(jobs: list[TrainJob], batch_size: int) -> Callable[..., Any]:
    """A tf.function that trains the active jobs for `n_epochs` epochs and returns mean losses."""
    import tensorflow as tf

    xs = [tf.constant(j.x, tf.float32) for j in jobs]
    ys = [tf.constant(j.y) for j in jobs]
    ws = [None if j.sample_weight is None else tf.constant(j.sample_weight, tf.float32)
          for j in jobs]
    sizes = [len(j.x) for j in jobs]
    steps = [math.ceil(n / batch_size) for n in sizes]
    max_steps = max(steps)
    k = len(jobs)
    limits_t = tf.constant([j.epochs for j in jobs], tf.int32)
    for job in jobs:
        job.optimizer.build(job.model.trainable_variables)

    def step_fn(i: int, idx: Any) -> Any:
        job = jobs[i]
        xb, yb = tf.gather(xs[i], idx), tf.gather(ys[i], idx)
        wb = None if ws[i] is None else tf.gather(ws[i], idx)
        variables = job.model.trainable_variables
        with tf.GradientTape() as tape:
            loss = job.loss(yb, job.model(xb, training=True), sample_weight=wb)
        grads = tape.gradient(loss, variables)
        job.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return tf.cast(loss, tf.float32)

    @tf.function
    def run(n_epochs: Any, active: Any, epoch0: Any) -> Any:
        totals = tf.zeros([k], tf.float32)
        for e in tf.range(n_epochs):
            perms = [
                tf.argsort(tf.random.stateless_uniform(
                    [sizes[i]], seed=tf.stack([tf.constant(jobs[i].seed, tf.int64),
                                               epoch0 + tf.cast(e, tf.int64)])))
                for i in range(k)
            ]
            epoch = tf.cast(epoch0 + tf.cast(e, tf.int64), tf.int32)
            live = tf.logical_and(active, epoch < limits_t)
            totals = tf.where(live, tf.zeros([k], tf.float32), totals)
            for s in tf.range(max_steps):
                losses = []
                for i in range(k):
                    idx = perms[i][s * batch_size : (s + 1) * batch_size]
                    take = tf.logical_and(live[i], s < steps[i])
                    losses.append(tf.cond(take, lambda i=i, idx=idx: step_fn(i, idx),
                                          lambda: tf.constant(0.0, tf.float32)))
                totals = totals + tf.stack(losses)
        return totals / tf.constant(steps, tf.float32)  # the last epoch's mean loss per job

    return run


def train_together(
    jobs: list[TrainJob],
    batch_size: int,
    chunks: int = 4,
    deadline: float | None = None,
    should_stop: Callable[[int], str | None] | None = None,
) -> list[TrainLog]:
    """Train every job for its epochs, checking between chunks whether a job should stop.

    `should_stop(i)` is called after each chunk for each active job and returns a reason
    (e.g. "early_success") or None to keep going. Past `deadline` (time.monotonic()), all stop.
    """
    import tensorflow as tf

    logs = [TrainLog() for _ in jobs]
    if not jobs:
        return logs
    run = _build_runner(jobs, batch_size)
    longest = max(j.epochs for j in jobs)
    chunk = max(1, math.ceil(longest / max(chunks, 1)))
    active = np.ones(len(jobs), dtype=bool)
    done = 0
    while done < longest and active.any():
        n = min(chunk, longest - done)
        losses = run(tf.constant(n), tf.constant(active), tf.constant(done, tf.int64)).numpy()
        done += n
        for i in np.flatnonzero(active):
            logs[i].epochs_run = min(done, jobs[i].epochs)
            logs[i].losses.append(float(losses[i]))
            if not np.isfinite(losses[i]):
                logs[i].stopped, active[i] = "diverged", False
            elif done >= jobs[i].epochs:
                active[i] = False
            elif should_stop is not None and (reason := should_stop(int(i))):
                logs[i].stopped, active[i] = reason, False
        if deadline is not None and time.monotonic() > deadline:
            for i in np.flatnonzero(active):
                logs[i].stopped = "time_budget"
            break
    return logs
