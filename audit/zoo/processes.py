"""The zoo's worker pool: run calls in fresh spawned processes, one compute thread each, so
building and auditing many small models uses every core without sharing TensorFlow state.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from audit.models.imports import defer_unused_imports


def map_in_processes(fn: Callable[..., Any], calls: list[tuple[Any, ...]], workers: int,
                     slow_first: list[bool] | None = None) -> list[Any]:
    """`fn(*args)` for every call, results in the calls' order: here, or spread over
    `workers` fresh processes (spawned, so none inherits this one's TensorFlow state), the
    calls marked slow handed out first so that no worker ends alone on a long one."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(*args) for args in calls]

    slow = slow_first or [False] * len(calls)
    order = sorted(range(len(calls)), key=lambda i: not slow[i])
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=context,
                             initializer=_one_thread_each) as pool:
        done = list(pool.map(fn, *zip(*(calls[i] for i in order), strict=True)))
    results: list[Any] = [None] * len(calls)
    for i, result in zip(order, done, strict=True):
        results[i] = result
    return results


def _one_thread_each() -> None:
    """A pool worker computes on one thread (set before TensorFlow or numpy's BLAS start):
    the workers share the cores, and tiny models gain nothing from more threads. It imports
    Keras as a fleet worker does, without what it never uses (`models.imports`)."""
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    defer_unused_imports()
