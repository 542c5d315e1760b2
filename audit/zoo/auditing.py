"""Auditing the built zoo: every case as built (all probes, the default budget) under one or
several seeds, in worker processes, for the suite and the stability benchmark.
"""

from __future__ import annotations

from typing import Any

from audit.manifest.case import CaseSpec
from audit.zoo.build import ZooCase
from audit.zoo.processes import map_in_processes


def audit_zoo(cases: list[ZooCase], seed: int = 0, workers: int = 1) -> dict[str, Any]:
    """Every case audited as built (all probes, the default budget) under `seed`, in `workers`
    processes: {name: CaseReport}. The suite and the stability benchmark use it; a fleet runs
    on Ray (`audit run`)."""
    return audit_zoo_seeds(cases, (seed,), workers)[seed]


def audit_zoo_seeds(cases: list[ZooCase], seeds: tuple[int, ...],
                    workers: int = 1) -> dict[int, dict[str, Any]]:
    """`audit_zoo` under several seeds at once (one pool for all): {seed: {name: report}}."""

    pairs = [(seed, case) for seed in seeds for case in cases]
    specs = [(CaseSpec(**case.spec_fields(), seed=seed),) for seed, case in pairs]
    reports = map_in_processes(_audit, specs, workers,
                               slow_first=[c.shape != "mlp" for _, c in pairs])
    out: dict[int, dict[str, Any]] = {seed: {} for seed in seeds}
    for (seed, case), report in zip(pairs, reports, strict=True):
        out[seed][case.name] = report
    return out


def _audit(spec: Any) -> Any:
    from audit.engine import audit_case  # in the child process: building never needs it

    return audit_case(spec)
