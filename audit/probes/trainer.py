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

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.inputs import Feed, feed_len, feed_signature


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


def _config_key(obj: Any, drop: tuple[str, ...] = ("name",)) -> str:
    config = obj.get_config() if hasattr(obj, "get_config") else {"repr": repr(obj)}
    return json.dumps({k: v for k, v in config.items() if k not in drop}, sort_keys=True,
                      default=str)


def trace_key(job: TrainJob) -> tuple[Any, ...]:
    """Jobs with equal keys can share one traced training graph."""
    layers = tuple((type(layer).__name__, _config_key(layer)) for layer in job.model.layers)
    return (
        layers,
        type(job.optimizer).__name__,
        _config_key(job.optimizer, ("name", "learning_rate", "clipnorm")),
        type(job.loss).__name__,
        _config_key(job.loss),
        feed_signature(job.x),
        job.y.shape[1:],
        str(job.y.dtype),
        job.shuffle,
    )


class _Graph:
    """One traced training loop over a template copy of the model, shared by every job with the
    same `trace_key`: a job's weights and optimizer state are copied into the template's
    variables, trained, and copied out (cheap for small models, and far cheaper than tracing
    Keras layers again). What may differ between those jobs is an input of the graph: the
    learning rate (optimizer state), the sample weights (ones when a job has none) and the
    gradient clipping norm (a variable; infinite: no clipping)."""

    def __init__(self, first: TrainJob, batch_size: int) -> None:
        import tensorflow as tf

        from audit.probes.tfutil import clone_with_state

        model = clone_with_state(first.model)
        # clipping is done here, by a variable norm, so jobs with and without it share a graph
        optimizer = type(first.optimizer).from_config(
            {**first.optimizer.get_config(), "clipnorm": None})
        optimizer.build(model.trainable_variables)
        self.clipnorm = tf.Variable(math.inf, dtype=tf.float32, trainable=False)
        clipnorm = self.clipnorm
        loss_fn = first.loss
        self.model, self.optimizer, self.batch_size = model, optimizer, batch_size
        #: a fresh optimizer's state; every job starts from it with its own learning rate
        self.fresh_state = [np.array(v) for v in optimizer.variables]
        rate = optimizer.learning_rate
        self.rate_index = next((k for k, v in enumerate(optimizer.variables) if v is rate), None)
        variables = model.trainable_variables
        shuffle = first.shuffle

        @tf.function(reduce_retracing=True)
        def run(x: Any, y: Any, w: Any, epochs: Any, epoch0: Any, seed: Any) -> Any:
            n = tf.shape(tf.nest.flatten(x)[0])[0]
            steps = (n + batch_size - 1) // batch_size
            last = tf.constant(0.0, tf.float32)
            for e in tf.range(epochs):
                key = tf.stack([seed, epoch0 + tf.cast(e, tf.int64)])
                perm = (tf.argsort(tf.random.stateless_uniform([n], seed=key)) if shuffle
                        else tf.range(n))
                total = tf.constant(0.0, tf.float32)
                for s in tf.range(steps):
                    idx = perm[s * batch_size : (s + 1) * batch_size]
                    with tf.GradientTape() as tape:
                        rows = tf.nest.map_structure(lambda t, i=idx: tf.gather(t, i), x)
                        out = model(rows, training=True)
                        loss = loss_fn(tf.gather(y, idx), out, sample_weight=tf.gather(w, idx))
                        if model.losses:  # the model's own penalties, as fit adds them
                            loss += tf.add_n([tf.cast(p, loss.dtype) for p in model.losses])
                    grads = clip_by_norm(tape.gradient(loss, variables), clipnorm)
                    optimizer.apply_gradients(zip(grads, variables, strict=True))
                    total += tf.cast(loss, tf.float32) * tf.cast(tf.size(idx), tf.float32)
                last = total / tf.cast(n, tf.float32)  # weighted by batch size, as fit reports
            return last

        self.run = run
        self.forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def start_state(self, job: TrainJob) -> list[np.ndarray]:
        """A fresh optimizer state carrying `job`'s learning rate."""
        state = [v.copy() for v in self.fresh_state]
        if self.rate_index is not None:
            rate = job.optimizer.get_config()["learning_rate"]
            state[self.rate_index] = np.asarray(rate, state[self.rate_index].dtype)
        return state

    def train(self, job: TrainJob, data: _Data, epochs: int, epoch0: int) -> float:
        """Train `job` for `epochs` epochs from epoch `epoch0`; `data` holds its state."""
        import tensorflow as tf

        from audit.probes.tfutil import predict

        if data.optimizer_state is None:
            data.optimizer_state = self.start_state(job)
        for variable, value in zip(self.model.weights, data.weights, strict=True):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, data.optimizer_state, strict=True):
            variable.assign(value)
        self.clipnorm.assign(job.optimizer.clipnorm or math.inf)
        loss = self.run(data.x, data.y, data.w, tf.constant(epochs),
                        tf.constant(epoch0, tf.int64), data.seed)
        # the template serves the next job: keep this job's state as device snapshots
        data.weights = [tf.identity(v.value) for v in self.model.weights]
        data.optimizer_state = [tf.identity(v.value) for v in self.optimizer.variables]
        loss = float(loss)
        if job.x_val is not None:
            # a finite model predicts in the traced forward pass (an eager call of a recurrent
            # layer loops in Python); a diverged one eagerly, where NaN stays NaN (a graph's
            # fused MatMul+BiasAdd+ReLU turns it into 0)
            data.outputs = (self.outputs(data) if math.isfinite(loss)
                            else predict(self.model, job.x_val))
        return loss

    def outputs(self, data: _Data) -> np.ndarray:
        """The template's outputs on the job's validation rows, as `tfutil.predict` gives
        them (rows x outputs, the first output of a dict)."""
        out = self.forward(data.x_val)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return np.asarray(out, dtype=np.float32).reshape(len(out), -1)


def clip_by_norm(grads: list[Any], clipnorm: Any) -> list[Any]:
    """Keras' `clipnorm` (each gradient scaled to norm <= clipnorm, as `BaseOptimizer` computes
    it), with the norm a tensor: an infinite norm leaves the gradients as they are, at the
    cost of one `tf.cond` per step. A sparse gradient (an embedding's) stays sparse, its norm
    taken over its values as Keras takes it (a row repeated in the batch counts per repeat)."""
    import tensorflow as tf

    def clip(grad: Any) -> Any:
        values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
        l2sum = tf.reduce_sum(tf.square(values))
        positive = l2sum > 0
        norm = tf.where(positive, tf.sqrt(tf.where(positive, l2sum, tf.ones_like(l2sum))),
                        l2sum)
        clipped = values * clipnorm / tf.maximum(norm, clipnorm)
        if isinstance(grad, tf.IndexedSlices):
            return tf.IndexedSlices(clipped, grad.indices, grad.dense_shape)
        return clipped

    present = [k for k, g in enumerate(grads) if g is not None]
    if not present:
        return list(grads)
    kept = [grads[k] for k in present]
    done = tf.cond(tf.math.is_finite(clipnorm), lambda: [clip(g) for g in kept],
                   lambda: kept)
    out = list(grads)
    for k, g in zip(present, done, strict=True):
        out[k] = g
    return out


class _Data:
    """A job's data as device tensors (built once), and its weights and optimizer state
    between chunks."""

    def __init__(self, job: TrainJob) -> None:
        import tensorflow as tf

        self.x = tf.nest.map_structure(tf.constant, job.x)
        self.y = tf.constant(job.y)
        rows = feed_len(job.x)
        weights = job.sample_weight if job.sample_weight is not None else np.ones(rows)
        self.w = tf.constant(weights, tf.float32)
        self.seed = tf.constant(job.seed, tf.int64)
        self.x_val = None if job.x_val is None else tf.nest.map_structure(tf.constant,
                                                                          job.x_val)
        self.weights: list[Any] = job.start_weights()  # numpy at first, then device tensors
        self.optimizer_state: list[Any] | None = None
        self.outputs: np.ndarray | None = None


#: the key under which `train_together`'s `graphs` keeps the stacked ensembles' traced loops
STACKED = ("stacked ensembles",)


class _StackedGraph:
    """Ensembles (one per `stack_key`) and the one traced function that trains them all:
    later jobs that fit reuse both (`Ensemble.load`), so a race's rounds trace once."""

    def __init__(self, ensembles: dict[tuple[Any, ...], Any]) -> None:
        self.ensembles = ensembles
        self.run = _one_graph(list(ensembles.values()))

    def fits(self, jobs: list[TrainJob], groups: dict[tuple[Any, ...], list[int]],
             batch_size: int) -> bool:
        """Whether every group has its ensemble here, fits it, and fills at least half of it
        (padding members compute too: past that, tracing anew costs less)."""
        return all(key in self.ensembles
                   and self.ensembles[key].fits([jobs[i] for i in members], batch_size)
                   and 2 * len(members) >= self.ensembles[key].capacity
                   for key, members in groups.items())


class StackedBackend(Backend):
    """Plain Dense stacks, each group of one shape as an `Ensemble`, all of them in one
    `tf.function`: every seed and variant of a shape in one small graph. The graph is kept in
    `graphs` and reused by later calls whose jobs fit it (no new trace)."""

    def __init__(self, jobs: list[TrainJob], groups: dict[tuple[Any, ...], list[int]],
                 batch_size: int, graphs: dict[tuple[Any, ...], Any]) -> None:
        from audit.probes.ensemble import Ensemble

        kept: list[_StackedGraph] = graphs.setdefault(STACKED, [])
        graph = next((g for g in kept if g.fits(jobs, groups, batch_size)), None)
        if graph is not None:
            for key, members in groups.items():
                graph.ensembles[key].load([jobs[i] for i in members])
        else:
            graph = _StackedGraph({key: Ensemble([jobs[i] for i in members], batch_size)
                                   for key, members in groups.items()})
            kept.append(graph)
        self.groups = [(groups.get(key, []), ensemble)
                       for key, ensemble in graph.ensembles.items()]
        self.members = [i for members in groups.values() for i in members]
        self.has_outputs = {i: jobs[i].x_val is not None for i in self.members}
        self.run = graph.run

    def train(self, epochs: int, epoch0: int, active: list[bool]) -> dict[int, Trained]:
        import tensorflow as tf

        masks = [[active[i] for i in members] + [False] * (ensemble.capacity - len(members))
                 for members, ensemble in self.groups]
        if not any(any(m) for m in masks):
            return {}
        results = self.run(tf.constant(epochs), tf.constant(epoch0, tf.int64),
                           [tf.constant(m) for m in masks])
        out: dict[int, Trained] = {}
        for (members, ensemble), mask, (losses, outputs) in zip(self.groups, masks, results,
                                                                strict=True):
            if not any(mask):
                continue
            snapshot = tf.identity(ensemble.params.value)  # stays on the device
            positions = list(ensemble.positions)  # the members' now (the ensemble is reused)
            outputs = np.asarray(outputs)
            for k, i in enumerate(members):
                if mask[k]:
                    out[i] = Trained(
                        float(losses[k]), outputs[k] if self.has_outputs[i] else None,
                        lambda e=ensemble, s=snapshot, k=k, p=positions:
                            e.member_weights(s, p)[k])
        return out


class GraphBackend(Backend):
    """Any other model: one traced graph per architecture (`_Graph`), shared by the jobs that
    have it, each job's weights and optimizer state swapped in and out."""

    def __init__(self, jobs: list[TrainJob], members: list[int], batch_size: int,
                 graphs: dict[tuple[Any, ...], Any]) -> None:
        self.jobs, self.members = jobs, members
        self.data = {i: _Data(jobs[i]) for i in members}
        self.graph_of: dict[int, _Graph] = {}
        for i in members:
            key = trace_key(jobs[i])
            if key not in graphs:
                graphs[key] = _Graph(jobs[i], batch_size)
            self.graph_of[i] = graphs[key]

    def train(self, epochs: int, epoch0: int, active: list[bool]) -> dict[int, Trained]:
        out: dict[int, Trained] = {}
        for i in self.members:
            if active[i]:
                data = self.data[i]
                loss = self.graph_of[i].train(self.jobs[i], data, epochs, epoch0)
                out[i] = Trained(loss, data.outputs,
                                 lambda w=data.weights: [np.asarray(v) for v in w])
        return out


def _one_graph(ensembles: list[Any]) -> Callable[..., Any]:
    """All ensembles' epochs in one traced function: one trace, and they run side by side."""
    import tensorflow as tf

    def skip(ensemble: Any) -> Callable[[], Any]:
        return lambda: (tf.zeros([len(ensemble.jobs)], tf.float32),
                        tf.zeros(ensemble.output_shape, tf.float32))

    @tf.function(reduce_retracing=True)
    def run(epochs: Any, epoch0: Any, masks: list[Any]) -> list[Any]:
        return [
            tf.cond(tf.reduce_any(mask), lambda e=e: e.train_epochs(epochs, epoch0), skip(e))
            for e, mask in zip(ensembles, masks, strict=True)
        ]

    return run


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
    from audit.probes.ensemble import stack_key

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
