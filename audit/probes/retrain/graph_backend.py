"""The backend for any model: one traced training loop per architecture (with optimizer family
and loss), shared by every job that has it; a job's weights and optimizer state are swapped into
the traced template's variables and out (as device snapshots). The learning rate is optimizer
state, and the sample weights and the clipping norm are inputs of the graph, so a rate ladder,
class weights and clipping cost no retrace."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from audit.probes.retrain.train_jobs import Backend, Trained, TrainJob
from audit.probes.tfutil import clone_with_state, predict
from audit.subject.inputs import feed_len, feed_signature


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
