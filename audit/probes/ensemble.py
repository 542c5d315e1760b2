"""Many small dense networks trained as one: every weight gets a leading "member" axis.

The retraining probe trains the same small architecture a dozen or more times (seeds x
counterfactuals). For plain stacks of Dense layers, those trainings are stacked: kernels become
`(members, in, out)`, biases `(members, 1, out)`, and one batched matmul per layer serves every
member. Members may differ in everything that does not change a tensor's shape:
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

#: optimizers whose update treats every element on its own (safe to stack)
ELEMENTWISE_OPTIMIZERS = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "Nadam",
                          "Adadelta", "Lion"}
_UNSTACKABLE_OPTIMIZER_KEYS = ("global_clipnorm", "use_ema", "gradient_accumulation_steps",
                               "loss_scale_factor")
_PLAIN_DENSE_KEYS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                     "kernel_constraint", "bias_constraint", "lora_rank")
_PER_MEMBER_OPTIMIZER_KEYS = ("name", "learning_rate", "clipnorm")


def dense_stack(model: Any) -> list[tuple[Any, Any, str]] | None:
    """The model as [(dense_layer, activation_fn, activation_key)], or None when it is not a
    plain Dense stack. The key names the activation (Activation layers after a Dense fold into
    it, e.g. "linear>relu")."""
    import keras

    if not isinstance(model, keras.Sequential) or len(model.inputs[0].shape) != 2:
        return None
    stack: list[tuple[Any, Any, str]] = []
    for layer in model.layers:
        config = layer.get_config()
        key = json.dumps(config.get("activation"), sort_keys=True, default=str)
        if isinstance(layer, keras.layers.Dense):
            plain = not any(config.get(k) for k in _PLAIN_DENSE_KEYS)
            if not plain or layer.dtype_policy.name != "float32":
                return None
            stack.append((layer, layer.activation, key))
        elif isinstance(layer, keras.layers.Activation) and stack:
            previous, act, previous_key = stack[-1]
            stack[-1] = (previous, _compose(act, layer.activation), f"{previous_key}>{key}")
        else:
            return None
    return stack or None


def _compose(first: Any, second: Any) -> Any:
    return lambda t: second(first(t))


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
    """The stacked state and traced training loop of jobs sharing one `stack_key`."""

    def __init__(self, jobs: list[Any], batch_size: int) -> None:
        import keras
        import tensorflow as tf

        self.jobs = jobs
        stacks = [dense_stack(job.model) for job in jobs]
        first = stacks[0]
        #: per layer: [(activation_fn, member mask)], one entry per activation present
        self.activations = [
            [(fn, _mask([s[i][2] == key for s in stacks])) for key, fn in
             _distinct((s[i][2], s[i][1]) for s in stacks)]
            for i in range(len(first))
        ]
        self.use_bias = [layer.use_bias for layer, _, _ in first]
        #: where each stacked variable's values sit in a member's `model.weights`
        self.positions = [_positions(job.model) for job in jobs]
        starts = [job.start_weights() for job in jobs]
        self.kernels = [
            keras.Variable(np.stack([w[pos[i][0]] for w, pos in zip(starts, self.positions,
                                                                    strict=True)]))
            for i in range(len(first))
        ]
        self.biases = [
            keras.Variable(np.stack([w[pos[i][1]][None, :] for w, pos in zip(
                starts, self.positions, strict=True)]))
            for i in range(len(first)) if self.use_bias[i]
        ]
        self.variables = [*self.kernels, *self.biases]
        #: per optimizer family: (optimizer over the stacked variables, its member mask)
        self.optimizers = []
        families = [optimizer_family(job.optimizer) for job in jobs]
        for family, template in _distinct((f, job.optimizer) for f, job in
                                          zip(families, jobs, strict=True)):
            mine = [f == family for f in families]
            rates = tf.constant(np.array([
                float(job.optimizer.get_config()["learning_rate"]) if m else 0.0
                for job, m in zip(jobs, mine, strict=True)], np.float32).reshape(-1, 1, 1))
            config = {k: v for k, v in template.get_config().items()
                      if k not in _PER_MEMBER_OPTIMIZER_KEYS}
            optimizer = type(template)(learning_rate=lambda r=rates: r, **config)
            optimizer.build(self.variables)
            self.optimizers.append((optimizer, _mask(mine)))
        clip = [job.optimizer.clipnorm or math.inf for job in jobs]
        self.clips = any(math.isfinite(c) for c in clip)
        self.clipnorm = tf.constant(np.array(clip, dtype=np.float32))
        self.loss = jobs[0].loss
        self.x = tf.constant(np.stack([job.x for job in jobs]).astype(np.float32))
        self.y = tf.constant(np.stack([job.y for job in jobs]))
        self.w = tf.constant(np.stack([
            job.sample_weight if job.sample_weight is not None else np.ones(len(job.x))
            for job in jobs]).astype(np.float32))
        self.x_val = tf.constant(np.stack([
            job.x_val if job.x_val is not None else job.x[:0] for job in jobs]).astype(np.float32))
        #: (members, validation rows, outputs): what `train_epochs` predicts after training
        self.output_shape = (len(jobs), self.x_val.shape[1], first[-1][0].kernel.shape[-1])
        self.seeds = tf.constant([job.seed for job in jobs], tf.int64)
        self.shuffle = jobs[0].shuffle
        self.batch_size = batch_size

    def forward(self, x: Any) -> Any:
        import tensorflow as tf

        h = x
        biases = iter(self.biases)
        for kernel, use_bias, acts in zip(self.kernels, self.use_bias, self.activations,
                                          strict=True):
            h = tf.matmul(h, kernel)
            if use_bias:
                h = h + next(biases)
            out = acts[0][0](h)
            for act, mask in acts[1:]:  # members disagree: each keeps its own activation
                out = tf.where(mask, act(h), out)
            h = out
        return h

    def _clip(self, grads: list[Any]) -> list[Any]:
        """Keras' clipnorm, per member: each gradient tensor scaled to norm <= clipnorm."""
        import tensorflow as tf

        clipped = []
        for g in grads:
            norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=list(range(1, len(g.shape)))))
            limit = self.clipnorm
            scale = tf.where(norm > limit, limit / tf.maximum(norm, 1e-12), tf.ones_like(norm))
            clipped.append(g * tf.reshape(scale, [-1] + [1] * (len(g.shape) - 1)))
        return clipped

    def train_epochs(self, epochs: Any, epoch0: Any) -> Any:
        """Train every member for `epochs` epochs; returns each member's last epoch loss and
        its outputs on its validation rows.

        The caller keeps the results and copies out the weights of running members only.

        Graph code: the trainer calls it inside one `tf.function` that holds every ensemble."""
        import tensorflow as tf

        members = len(self.jobs)
        n = self.x.shape[1]
        b = self.batch_size
        steps = (n + b - 1) // b
        last = tf.zeros([members], tf.float32)
        for e in tf.range(epochs):
            if self.shuffle:
                keys = tf.stack([self.seeds, tf.fill([members], epoch0 + tf.cast(e, tf.int64))],
                                axis=1)
                perm = tf.map_fn(lambda k: tf.argsort(tf.random.stateless_uniform([n], seed=k)),
                                 keys, fn_output_signature=tf.int32)
            else:
                perm = tf.tile(tf.range(n)[None, :], [members, 1])
            total = tf.zeros([members], tf.float32)
            for s in tf.range(steps):
                idx = perm[:, s * b : (s + 1) * b]
                xb = tf.gather(self.x, idx, batch_dims=1)
                yb = tf.gather(self.y, idx, batch_dims=1)
                wb = tf.gather(self.w, idx, batch_dims=1)
                with tf.GradientTape() as tape:
                    per_sample = self.loss.call(yb, self.forward(xb)) * wb
                    per_member = tf.reduce_mean(per_sample, axis=1)
                    objective = tf.reduce_sum(per_member)
                grads = tape.gradient(objective, self.variables)
                if self.clips:
                    grads = self._clip(grads)
                # members that already stopped keep training here, harmlessly: every member's
                # math is its own, and a stopped member's weights are never copied out again
                for optimizer, mask in self.optimizers:
                    mine = grads if len(self.optimizers) == 1 else [
                        tf.where(tf.reshape(mask, [-1] + [1] * (len(g.shape) - 1)), g,
                                 tf.zeros_like(g)) for g in grads]
                    optimizer.apply_gradients(zip(mine, self.variables, strict=True))
                total += per_member * tf.cast(tf.shape(idx)[1], tf.float32)
            last = total / tf.cast(n, tf.float32)
        return last, self.forward(self.x_val)

    def member_weights(self) -> list[list[np.ndarray]]:
        """Every member's current weights, each in its model's `model.weights` order."""
        kernels = [np.array(k) for k in self.kernels]
        biases = iter([np.array(b) for b in self.biases])
        stacked_biases = [next(biases) if use else None for use in self.use_bias]
        out = []
        for m, positions in enumerate(self.positions):
            weights: dict[int, np.ndarray] = {}
            for (k_pos, b_pos), kernel, bias in zip(positions, kernels, stacked_biases,
                                                    strict=True):
                weights[k_pos] = kernel[m]
                if b_pos is not None and bias is not None:
                    weights[b_pos] = bias[m][0]
            out.append([weights[k] for k in range(len(weights))])
        return out


def _positions(model: Any) -> list[tuple[int, int | None]]:
    """For each Dense layer of a plain stack: the index of its kernel and bias (None without
    one) in `model.weights`."""
    index = {id(w): k for k, w in enumerate(model.weights)}
    return [(index[id(layer.kernel)], index[id(layer.bias)] if layer.use_bias else None)
            for layer, _, _ in dense_stack(model)]


def _distinct(pairs: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs with the first value seen for each key, in order of first sight."""
    seen: dict[Any, Any] = {}
    for key, value in pairs:
        seen.setdefault(key, value)
    return list(seen.items())


def _mask(flags: list[bool]) -> Any:
    """A member mask shaped (members, 1, 1), to broadcast over (members, rows, units)."""
    import tensorflow as tf

    return tf.constant(np.array(flags, bool).reshape(-1, 1, 1))
