"""The backend for plain Dense stacks: each group of one shape trains as one `Ensemble` (every
seed and variant in one small graph), all groups in one `tf.function`, kept and reused by later
calls whose jobs fit it (the race's next round traces nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from audit.probes.retrain.ensemble import Ensemble
from audit.probes.retrain.train_jobs import Backend, Trained, TrainJob

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
