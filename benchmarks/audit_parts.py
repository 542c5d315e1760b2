"""Where one audit's seconds go, inside the probes: the fixed part against the training.

`benchmarks/probe_times.py --parts` prints, per case, the audit's wall time split into what
costs the same whatever the model's own training length (loading, the cheap probes, the
retrain probe's split and plans, its reference learner, confident learning, building the
counterfactuals, setting up and tracing their training graphs) and what scales with it (the
training steps themselves). The split is measured by wrapping the functions that do each part
while the audit runs as shipped (nothing is skipped or mocked; the wrappers only time):

- `retrain.prepare`, `retrain.reference` (`linear_reference`), `retrain.label_noise`
  (`label_noise.for_rows`), `retrain.build` (`build_variants`, and `initial_weights`: each
  seed's starting weights) and `retrain.training` (`train_together`) are inclusive times;
- within training, `setup` is building the training graphs' state (`Ensemble.__init__` for the
  stacked Dense models, `_Graph.__init__` for the others: clones, optimizers, variables),
  `tracing` the Python time spent tracing `tf.function` bodies (the only time those bodies run
  in Python), `first_calls` the rest of the calls that traced (graph optimization and the
  first chunk's steps), `scoring` judging each seed between chunks;
- `steps` = training - setup - tracing - first_calls - scoring: training steps after the
  first chunk of each graph (a lower bound of what scales with epochs);
- `fixed` = total - steps - first_calls;
- `steps_in_sequence`: the optimizer steps the counterfactuals ran one after another (a
  stacked ensemble steps all its members at once; other models train one job at a time),
  against the fit's own epochs x batches per epoch: what bounds fit / audit from above.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

#: (module, attribute, part): functions timed inclusively while an audit runs
WRAPPED = (
    ("audit.probes.retrain.probe", "prepare", "retrain.prepare"),
    ("audit.probes.retrain.probe", "linear_reference", "retrain.reference"),
    ("audit.probes.retrain.label_noise", "for_rows", "retrain.label_noise"),
    ("audit.probes.retrain.probe", "build_variants", "retrain.build"),
    ("audit.probes.retrain.race", "initial_weights", "retrain.build"),
    ("audit.probes.retrain.race", "train_together", "retrain.training"),
    ("audit.probes.retrain.race", "score", "scoring"),
)
PARTS = ("retrain.prepare", "retrain.reference", "retrain.label_noise", "retrain.build",
         "retrain.training", "setup", "tracing", "first_calls", "scoring", "traces",
         "steps_in_sequence")


class Stopwatch:
    """Accumulated seconds per part (and the count of traces)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._depth: dict[str, int] = defaultdict(int)

    def timed(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, its time added to `part` (a recursive or nested call counts once)."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._depth[part]:
                return fn(*args, **kwargs)
            self._depth[part] += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[part] += time.perf_counter() - started
                self._depth[part] -= 1

        return wrapper

    def traced_function(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """A stand-in for `tf.function` whose functions time their tracing and first calls."""
        watch = self

        def decorate(fn: Callable[..., Any], **options: Any) -> Any:
            body = watch.timed("tracing", fn)
            compiled = original(body, **options)

            class Timed:
                def __call__(self, *args: Any, **kwargs: Any) -> Any:
                    before = compiled.experimental_get_tracing_count()
                    tracing_before = watch.spent["tracing"]
                    started = time.perf_counter()
                    out = compiled(*args, **kwargs)
                    if compiled.experimental_get_tracing_count() > before:
                        watch.spent["traces"] += 1
                        watch.spent["first_calls"] += (time.perf_counter() - started
                                                       - (watch.spent["tracing"]
                                                          - tracing_before))
                    return out

            return Timed()

        def function(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
            if fn is None:
                return lambda f: decorate(f, **options)
            return decorate(fn, **options)

        return function

    def counted_stacked(self, train: Callable[..., Any]) -> Callable[..., Any]:
        """`StackedBackend.train`, counting the optimizer steps it runs one after another
        (every member of every ensemble steps at once: the longest ensemble's count)."""
        watch = self

        def wrapper(backend: Any, epochs: int, epoch0: int, active: list[bool]) -> Any:
            out = train(backend, epochs, epoch0, active)
            if out:
                watch.spent["steps_in_sequence"] += epochs * max(
                    -(-int(e.x.shape[1]) // e.batch_size) for _, e in backend.groups)
            return out

        return wrapper

    def counted_graph(self, train: Callable[..., Any]) -> Callable[..., Any]:
        """`_Graph.train` (one job at a time), counting its optimizer steps."""
        from audit.subject.inputs import feed_len

        watch = self

        def wrapper(graph: Any, job: Any, data: Any, epochs: int, epoch0: int) -> Any:
            watch.spent["steps_in_sequence"] += epochs * -(-feed_len(job.x) // graph.batch_size)
            return train(graph, job, data, epochs, epoch0)

        return wrapper

    def row(self) -> dict[str, float]:
        out = {part: self.spent.get(part, 0.0) for part in PARTS}
        out["steps"] = max(0.0, out["retrain.training"] - out["setup"] - out["tracing"]
                           - out["first_calls"] - out["scoring"])
        return out


@contextmanager
def watching() -> Iterator[Stopwatch]:
    """While inside, the audit's parts are timed into the returned stopwatch."""
    import importlib

    import tensorflow as tf

    from audit.probes.retrain import ensemble, graph_backend, stacked_backend

    watch = Stopwatch()
    with ExitStack() as undo:
        def patch(owner: Any, name: str, value: Any) -> None:
            old = getattr(owner, name)
            setattr(owner, name, value)
            undo.callback(setattr, owner, name, old)

        for module, name, part in WRAPPED:
            owner = importlib.import_module(module)
            patch(owner, name, watch.timed(part, getattr(owner, name)))
        patch(ensemble.Ensemble, "__init__", watch.timed("setup", ensemble.Ensemble.__init__))
        graph, stacked = graph_backend._Graph, stacked_backend.StackedBackend
        patch(graph, "__init__", watch.timed("setup", graph.__init__))
        patch(tf, "function", watch.traced_function(tf.function))
        patch(stacked, "train", watch.counted_stacked(stacked.train))
        patch(graph, "train", watch.counted_graph(graph.train))
        yield watch


def parts_table(rows: list[dict[str, Any]]) -> str:
    """Seconds per part per case, and the fixed part's share of the audit."""
    header = ["load", "data", "config", "sensitivity", "activations", "gradients",
              "retrain", "r.prepare", "r.reference", "r.label_noise", "r.build", "r.training",
              "setup", "tracing", "first_calls", "scoring", "steps", "traces", "total",
              "fixed%"]
    keys = ["load", "data", "config", "sensitivity", "activations", "gradients", "retrain",
            "retrain.prepare", "retrain.reference", "retrain.label_noise", "retrain.build",
            "retrain.training", "setup", "tracing", "first_calls", "scoring", "steps",
            "traces", "total", "fixed_share"]
    lines = [f"{'case':<30}" + "".join(f"{h:>12}" for h in header)]
    for row in rows:
        cells = []
        for key in keys:
            value = row.get(key, float("nan"))
            if key == "fixed_share":
                cells.append(f"{100 * value:>11.0f}%")
            elif key == "traces":
                cells.append(f"{value:>12.0f}")
            else:
                cells.append(f"{value:>12.2f}")
        lines.append(f"{row['case']:<30}" + "".join(cells))
    return "\n".join(lines)


def with_share(row: dict[str, Any]) -> dict[str, Any]:
    """The row with `fixed` (what does not scale with the training length) and its share."""
    fixed = row["total"] - row["steps"] - row["first_calls"]
    return {**row, "fixed": fixed, "fixed_share": fixed / row["total"] if row["total"] else 0.0}
