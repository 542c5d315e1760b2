"""Many small dense networks trained as one: every weight gets a leading "member" axis.

The retraining probe trains the same small architecture a dozen or more times (seeds x
counterfactuals). For plain stacks of Dense layers, those trainings are stacked: every member's
weights are one row of a single `(members, parameters)` variable, split and reshaped into
`(members, in, out)` kernels and `(members, 1, out)` biases, so one batched matmul per layer
serves every member and the optimizer makes one update per step, however deep the network
(Keras optimizers cost a dozen ops per variable, to trace and to run). Members may differ in
everything that does not change a tensor's shape:
- starting weights, learning rate (a `(members, 1, 1)` tensor), gradient-norm clipping (done per
  member), epochs (each stops on its own), shuffling seed;
- activations: a layer whose members disagree computes each activation once and picks, per
  member, its own;
- optimizer family: each family present gets a Keras optimizer over the stacked variables that
  sees only its members' gradients (the others' are zero) at their learning rate (the others'
  is zero), so it moves exactly its own members.
Supported optimizers update every element on its own, so stacking changes nothing in the math:
each member sums its own batch-mean loss, so its gradient is exactly its own. One small graph
per shape of network, whatever the number of members.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from audit.probes.dense_stack import dense_stack

#: optimizers whose update treats every element on its own (safe to stack)
ELEMENTWISE_OPTIMIZERS = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "Nadam",
                          "Adadelta", "Lion"}
_UNSTACKABLE_OPTIMIZER_KEYS = ("global_clipnorm", "use_ema", "gradient_accumulation_steps",
                               "loss_scale_factor")
_PER_MEMBER_OPTIMIZER_KEYS = ("name", "learning_rate", "clipnorm")


def optimizer_family(optimizer: Any) -> str | None:
    """What an optimizer's members must share to use one stacked optimizer (its class and its
    config but the learning rate and clipnorm); None: it cannot be stacked."""
    name = type(optimizer).__name__
    config = optimizer.get_config()
    if name not in ELEMENTWISE_OPTIMIZERS or any(config.get(k)
                                                 for k in _UNSTACKABLE_OPTIMIZER_KEYS):
        return None
    if not isinstance(config.get("learning_rate"), (int, float)):
        return None
    rest = {k: v for k, v in config.items() if k not in _PER_MEMBER_OPTIMIZER_KEYS}
    return json.dumps([name, rest], sort_keys=True, default=str)


def stack_key(job: Any) -> tuple[Any, ...] | None:
    """Jobs with equal keys train together as one ensemble; None: this job cannot be stacked."""
    if not isinstance(job.x, np.ndarray):
        return None
    stack = dense_stack(job.model)
    if stack is None or optimizer_family(job.optimizer) is None:
        return None
    return (
        "stack",
        tuple((tuple(layer.kernel.shape), layer.use_bias) for layer, _, _ in stack),
        type(job.loss).__name__,
        json.dumps({k: v for k, v in job.loss.get_config().items() if k != "name"},
                   sort_keys=True, default=str),
        job.x.shape,
        None if job.x_val is None else job.x_val.shape,
        job.y.shape[1:],
        str(job.y.dtype),
        job.shuffle,
    )


class Ensemble:
    """The stacked state and traced training loop of jobs sharing one `stack_key`.

    Everything a member brings (its weights, data, seed, learning rate, clipping, activation
    choice, optimizer family) lives in variables, so a traced loop serves later jobs of the
    same key too: `fits` says whether they fit its `capacity` (members), optimizer families
    and activations, and `load` swaps them in (fresh optimizer state; rows beyond the jobs are
    padding that trains at rate 0 and is never read)."""

    def __init__(self, jobs: list[Any], batch_size: int, capacity: int | None = None) -> None:
        import keras
        import tensorflow as tf

        size = max(len(jobs), capacity or 0)
        self.capacity = size
        first = dense_stack(jobs[0].model)
        assert first is not None
        #: per layer: the activations present, by key, in order of first sight
        self.activation_keys = [
            [key for key, _ in _distinct((s[i][2], s[i][1]) for s in
                                         (dense_stack(job.model) for job in jobs))]
            for i in range(len(first))
        ]
        fns = [dict(_distinct((s[i][2], s[i][1]) for s in
                              (dense_stack(job.model) for job in jobs)))
               for i in range(len(first))]
        #: per layer: [(activation_fn, member mask)], one entry per activation present
        self.activations = [
            [(fns[i][key], tf.Variable(np.zeros((size, 1, 1), bool), trainable=False))
             for key in self.activation_keys[i]]
            for i in range(len(first))
        ]
        self.use_bias = [layer.use_bias for layer, _, _ in first]
        #: the pieces of a member's row, in order: each layer's kernel, then its bias if any
        self.weight_shapes: list[tuple[int, ...]] = []
        for layer, _, _ in first:
            self.weight_shapes.append(tuple(layer.kernel.shape))
            if layer.use_bias:
                self.weight_shapes.append(tuple(layer.bias.shape))
        #: the shapes the forward pass uses (a bias as (1, units), to add to every row)
        self.shapes = [shape if len(shape) == 2 else (1, *shape)
                       for shape in self.weight_shapes]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        #: which piece each column of a row belongs to (for per-piece gradient clipping)
        self.piece_of = tf.constant(np.repeat(np.arange(len(self.sizes)), self.sizes), tf.int32)
        self.params = keras.Variable(np.zeros((size, sum(self.sizes)), np.float32))
        #: per optimizer family: (optimizer over the stacked variable, its rates, its mask)
        self.families: list[str | None] = []
        self.rates: list[Any] = []  # per family: each member's learning rate (0: not its own)
        self.optimizers = []
        for family, template in _distinct((optimizer_family(job.optimizer), job.optimizer)
                                          for job in jobs):
            rates = tf.Variable(np.zeros((size, 1), np.float32), trainable=False)
            config = {k: v for k, v in template.get_config().items()
                      if k not in _PER_MEMBER_OPTIMIZER_KEYS}
            optimizer = type(template)(learning_rate=lambda r=rates: r, **config)
            optimizer.build([self.params])
            self.families.append(family)
            self.rates.append(rates)
            self.optimizers.append(
                (optimizer, tf.Variable(np.zeros((size, 1), bool), trainable=False)))
        #: a fresh optimizer state per family (what `load` starts every member from)
        self.fresh = [[np.array(v) for v in opt.variables] for opt, _ in self.optimizers]
        self.clips = any(job.optimizer.clipnorm for job in jobs)
        self.clipnorm = tf.Variable(np.full(size, np.inf, np.float32), trainable=False)
        self.loss = jobs[0].loss
        x0, y0 = jobs[0].x, jobs[0].y
        x_val0 = jobs[0].x_val if jobs[0].x_val is not None else x0[:0]
        self.x = tf.Variable(np.zeros((size, *x0.shape), np.float32), trainable=False)
        self.y = tf.Variable(np.zeros((size, *y0.shape), y0.dtype), trainable=False)
        self.w = tf.Variable(np.zeros((size, len(x0)), np.float32), trainable=False)
        self.x_val = tf.Variable(np.zeros((size, *x_val0.shape), np.float32), trainable=False)
        #: (members, validation rows, outputs): what `train_epochs` predicts after training
        self.output_shape = (size, x_val0.shape[0], first[-1][0].kernel.shape[-1])
        self.seeds = tf.Variable(np.zeros(size, np.int64), trainable=False)
        self.shuffle = jobs[0].shuffle
        self.batch_size = batch_size
        self.load(jobs)

    def fits(self, jobs: list[Any], batch_size: int) -> bool:
        """Whether `jobs` (of this ensemble's `stack_key`) can train in its traced loop."""
        if len(jobs) > self.capacity or batch_size != self.batch_size:
            return False
        if any(optimizer_family(job.optimizer) not in self.families for job in jobs):
            return False
        if not self.clips and any(job.optimizer.clipnorm for job in jobs):
            return False
        for job in jobs:
            stack = dense_stack(job.model)
            if stack is None or any(key not in known for (_, _, key), known in
                                    zip(stack, self.activation_keys, strict=True)):
                return False
        return True

    def load(self, jobs: list[Any]) -> None:
        """Make `jobs` the members (rows 0..len(jobs)-1), from their starting weights, with a
        fresh optimizer state."""
        size, n = self.capacity, len(jobs)
        self.jobs = jobs
        stacks = [dense_stack(job.model) for job in jobs]
        #: where each piece sits in a member's `model.weights`
        self.positions = [_positions(job.model, stack) for job, stack in
                          zip(jobs, stacks, strict=True)]
        rows = np.zeros((size, sum(self.sizes)), np.float32)
        for k, (job, positions) in enumerate(zip(jobs, self.positions, strict=True)):
            start = job.start_weights()
            rows[k] = np.concatenate([start[p].ravel() for p in positions])
        self.params.assign(rows)
        for layer, (keys, acts) in enumerate(zip(self.activation_keys, self.activations,
                                                 strict=True)):
            for key, (_, mask) in zip(keys, acts, strict=True):
                mask.assign(np.array([k < n and stacks[k][layer][2] == key
                                      for k in range(size)], bool).reshape(-1, 1, 1))
        families = [optimizer_family(job.optimizer) for job in jobs]
        for (optimizer, mask), family, fresh, rates in zip(
                self.optimizers, self.families, self.fresh, self.rates, strict=True):
            for variable, value in zip(optimizer.variables, fresh, strict=True):
                variable.assign(value)
            mine = [k < n and families[k] == family for k in range(size)]
            rates.assign(np.array([
                float(jobs[k].optimizer.get_config()["learning_rate"]) if mine[k] else 0.0
                for k in range(size)], np.float32).reshape(-1, 1))
            mask.assign(np.array(mine, bool)[:, None])
        self.clipnorm.assign(np.array([
            (jobs[k].optimizer.clipnorm or math.inf) if k < n else math.inf
            for k in range(size)], np.float32))

        def padded(values: list[np.ndarray], dtype: Any) -> np.ndarray:
            out = np.zeros((size, *values[0].shape), dtype)
            out[:n] = np.stack(values).astype(dtype)
            return out

        self.x.assign(padded([job.x for job in jobs], np.float32))
        self.y.assign(padded([job.y for job in jobs], self.y.dtype.as_numpy_dtype))
        self.w.assign(padded([job.sample_weight if job.sample_weight is not None
                              else np.ones(len(job.x)) for job in jobs], np.float32))
        self.x_val.assign(padded([job.x_val if job.x_val is not None else job.x[:0]
                                  for job in jobs], np.float32))
        self.seeds.assign(padded([np.asarray(job.seed) for job in jobs], np.int64))

    def forward(self, x: Any, params: Any) -> Any:
        """Every member's outputs for its own rows `x` (members, rows, features)."""
        import tensorflow as tf

        members = self.capacity
        pieces = iter(tf.reshape(piece, [members, *shape]) for piece, shape in
                      zip(tf.split(params, self.sizes, axis=1), self.shapes, strict=True))
        h = x
        for use_bias, acts in zip(self.use_bias, self.activations, strict=True):
            h = tf.matmul(h, next(pieces))
            if use_bias:
                h = h + next(pieces)
            out = acts[0][0](h)
            for act, mask in acts[1:]:  # members disagree: each keeps its own activation
                out = tf.where(mask, act(h), out)
            h = out
        return h

    def _clip(self, grad: Any) -> Any:
        """Keras' clipnorm, per member: each piece's gradient (each of a model's variables)
        scaled to norm <= clipnorm."""
        import tensorflow as tf

        squares = tf.math.unsorted_segment_sum(tf.transpose(tf.square(grad)), self.piece_of,
                                               num_segments=len(self.sizes))
        norm = tf.sqrt(tf.transpose(squares))  # (members, pieces)
        limit = self.clipnorm[:, None]
        scale = tf.where(norm > limit, limit / tf.maximum(norm, 1e-12), tf.ones_like(norm))
        return grad * tf.gather(scale, self.piece_of, axis=1)

    def train_epochs(self, epochs: Any, epoch0: Any) -> Any:
        """Train every member for `epochs` epochs; returns each member's last epoch loss and
        its outputs on its validation rows.

        The caller keeps the results and copies out the weights of running members only.

        Graph code: the trainer calls it inside one `tf.function` that holds every ensemble."""
        import tensorflow as tf

        members = self.capacity
        n = self.x.shape[1]
        b = self.batch_size
        # the members' data, read once per call (not once per step)
        x, y, w, seeds = (tf.convert_to_tensor(v) for v in (self.x, self.y, self.w, self.seeds))
        steps = (n + b - 1) // b
        last = tf.zeros([members], tf.float32)
        for e in tf.range(epochs):
            if self.shuffle:
                keys = tf.stack([seeds, tf.fill([members], epoch0 + tf.cast(e, tf.int64))],
                                axis=1)
                perm = tf.map_fn(lambda k: tf.argsort(tf.random.stateless_uniform([n], seed=k)),
                                 keys, fn_output_signature=tf.int32)
            else:
                perm = tf.tile(tf.range(n)[None, :], [members, 1])
            total = tf.zeros([members], tf.float32)
            for s in tf.range(steps):
                idx = perm[:, s * b : (s + 1) * b]
                xb = tf.gather(x, idx, batch_dims=1)
                yb = tf.gather(y, idx, batch_dims=1)
                wb = tf.gather(w, idx, batch_dims=1)
                with tf.GradientTape() as tape:
                    params = tf.convert_to_tensor(self.params)
                    tape.watch(params)
                    per_sample = self.loss.call(yb, self.forward(xb, params)) * wb
                    per_member = tf.reduce_mean(per_sample, axis=1)
                    objective = tf.reduce_sum(per_member)
                grad = tape.gradient(objective, params)
                if self.clips:
                    grad = self._clip(grad)
                # members that already stopped keep training here, harmlessly: every member's
                # math is its own, and a stopped member's weights are never copied out again
                for optimizer, mask in self.optimizers:
                    mine = grad if len(self.optimizers) == 1 else tf.where(
                        mask, grad, tf.zeros_like(grad))
                    optimizer.apply_gradients([(mine, self.params)])
                total += per_member * tf.cast(tf.shape(idx)[1], tf.float32)
            last = total / tf.cast(n, tf.float32)
        return last, self.forward(self.x_val, tf.convert_to_tensor(self.params))

    def member_weights(self, params: Any = None,
                       positions: list[list[int]] | None = None) -> list[list[np.ndarray]]:
        """Every member's weights (now, or in a snapshot `params` of the stacked variable
        taken while the members had `positions`), each in its model's `model.weights`
        order."""
        members = self.positions if positions is None else positions
        rows = np.array(self.params if params is None else params)[: len(members)]
        bounds = np.cumsum(self.sizes)[:-1]
        out = []
        for row, where in zip(rows, members, strict=True):
            weights: list[np.ndarray] = [np.empty(0)] * len(where)
            for k, piece, shape in zip(where, np.split(row, bounds), self.weight_shapes,
                                       strict=True):
                weights[k] = piece.reshape(shape)
            out.append(weights)
        return out


def _positions(model: Any, stack: list[tuple[Any, Any, str]]) -> list[int]:
    """Where each piece of the model's Dense stack (`dense_stack(model)`: each layer's kernel,
    then its bias if it has one) sits in `model.weights`."""
    index = {id(w): k for k, w in enumerate(model.weights)}
    out = []
    for layer, _, _ in stack:
        out.append(index[id(layer.kernel)])
        if layer.use_bias:
            out.append(index[id(layer.bias)])
    return out


def _distinct(pairs: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs with the first value seen for each key, in order of first sight."""
    seen: dict[Any, Any] = {}
    for key, value in pairs:
        seen.setdefault(key, value)
    return list(seen.items())
