"""What every probe shares: its settings base and the wrapper that runs it.

A probe is a pure function `(Subject, settings) -> ProbeResult`. The wrapper owns seeding,
timing and turning an exception into an `error` result, so one failing probe never sinks a case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from audit.errors import NotApplicable
from audit.evidence.results import ProbeResult
from audit.util.text import one_line


class ProbeSettings(BaseModel):
    """Frozen, typed, JSON round-trippable settings; every probe's settings derive from this."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0


@dataclass(frozen=True)
class Probe:
    """A registry entry: the probe's function, its settings type and a one-line description."""

    name: str
    run: Callable[[Any, Any], ProbeResult]
    settings: type[ProbeSettings]
    description: str
    #: not run once the cheaper probes' evidence settles the case (`audit.faults.settled`)
    skipped_when_settled: bool = False
    #: which of its settings the case's `budget:` sets: setting name -> `Budget` field
    budget: Mapping[str, str] = field(default_factory=dict)


def run_probe(probe: Probe, subject: Any, settings: ProbeSettings | None = None) -> ProbeResult:
    """Run one probe with seeding and timing; exceptions become an `error` result."""
    settings = settings or probe.settings()
    seed_everything(settings.seed)
    start = time.perf_counter()
    try:
        result = probe.run(subject, settings)
    except NotApplicable as exc:
        result = ProbeResult(probe=probe.name, status="not_applicable", error=str(exc))
    except Exception as exc:
        error = f"{type(exc).__name__}: {one_line(exc)}"
        result = ProbeResult(probe=probe.name, status="error", error=error)
    result.duration_s = time.perf_counter() - start
    return result


def seed_everything(seed: int) -> None:
    """Seed numpy, Python, Keras and TensorFlow so a probe's result is reproducible."""
    import keras

    keras.utils.set_random_seed(seed)
    np.random.seed(seed)


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """At most `limit` row indices of `n`, chosen reproducibly (all rows when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


