"""What every benchmark comparison shares: the printed line, timing, logging, the machine and
git state, and the zoo cases it measures (built once into a folder and reused).

A comparison lives in its own module (`perturbation`, `retraining`, `audit_fit`,
`fleet_runs`); `run.py` only chooses what to run and prints.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COMPARISONS = ("perturbation", "perturbation_floor", "retrain", "audit_vs_one_fit",
               "audit_vs_one_fit_conv", "audit_vs_one_fit_sequence", "fleet_parallel",
               "fleet_overhead", "fleet_mixed", "nightly_validate", "fleet_longest_first")
TARGETS = {"perturbation": 50.0, "perturbation_floor": 0.7, "retrain": 5.0,
           "audit_vs_one_fit": 1.0, "audit_vs_one_fit_conv": 1.0,
           "audit_vs_one_fit_sequence": 1.0, "audit_vs_one_fit_worst": 1.0,
           "fleet_parallel": 1.7, "fleet_overhead": 0.9, "nightly_validate": 10.0,
           "fleet_longest_first": 1.0}
WHAT = {
    "perturbation": "sensitivity probe (one batched call) vs one model.predict per perturbation "
                    "slice (noise scale, row swap, feature); same inputs, outputs checked equal",
    "perturbation_floor": "one model(x) call over every perturbed input (the floor) vs our whole "
                          "sensitivity probe; ratio = floor / ours",
    "retrain": "train_together (no early stop, no shuffle) vs compile + model.fit per job, for "
               "every plan x seed the retrain probe would train; initial weights and final "
               "losses checked equal",
    "audit_vs_one_fit": "one model.fit of the model's own training config vs the whole "
                        "audit_case (all probes, default budget); ratio = fit / audit; the "
                        "plain MLP zoo cases",
    "audit_vs_one_fit_conv": "the same on the zoo's CNN cases (Conv2D on images)",
    "audit_vs_one_fit_sequence": "the same on the zoo's sequence cases (Embedding + LSTM on "
                                 "tokens, Conv1D on signals)",
    "audit_vs_one_fit_worst": "the smallest fit / audit ratio over the faulty cases of the three "
                              "audit_vs_one_fit lines (a healthy case skips retraining, so the "
                              "medians hide them), with the case named",
    "fleet_parallel": "the fleet on the local Ray with 1 worker slot vs 2 slots; ratio = 1 slot / "
                      "2 slots",
    "fleet_overhead": "a plain loop of audit_case in a fresh process (its imports included, "
                      "as the fleet's actor's are) vs the fleet with 1 slot; ratio = loop / "
                      "fleet (the JSON keeps the loop in this warm process too)",
    "nightly_validate": "expanding an unchanged fleet of large files into cases (what audit "
                        "validate does) the second time, as a new process (digest cache on "
                        "disk), vs the first time (cache empty); ids checked identical",
    "fleet_longest_first": "the second night of a mixed fleet whose longest case is listed "
                           "last, longest first (the first night's durations known), vs the "
                           "same night in manifest order, on 2 slots; span of the cases; "
                           "verdicts checked equal; the JSON has the bound max(longest, "
                           "total/slots)",
    "fleet_mixed": "throughput, not a ratio: a fleet of every zoo shape, healthy and faulty "
                   "about 80/20, all probes, on 2 slots; cases per hour of wall time, actor "
                   "starts included",
}


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the result lines and the table."""
    print(message, file=sys.stderr, flush=True)


def seconds(value: float) -> str:
    """A time with about three significant digits, never in exponent form."""
    if not math.isfinite(value):
        return "nan"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def ratio_text(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "nan"


def median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(statistics.median(finite)) if finite else float("nan")


@dataclass
class Comparison:
    """One printed line: our time, the baseline's, their ratio, and what they rest on."""

    name: str
    ours_s: float
    baseline_s: float
    ratio: float
    cases: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        if "skipped" in self.notes:
            return f"{self.name}: skipped ({self.notes['skipped']})"
        case = f", {self.notes['case']}" if "case" in self.notes else ""
        return (f"{self.name}: {ratio_text(self.ratio)} x (ours {seconds(self.ours_s)} s vs "
                f"baseline {seconds(self.baseline_s)} s{case})")

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "ratio": self.ratio, "ours_s": self.ours_s,
                "baseline_s": self.baseline_s, "target": TARGETS[self.name],
                "meets_target": bool(self.ratio >= TARGETS[self.name]),
                "what": WHAT[self.name], "cases": self.cases, **self.notes}


def per_case(name: str, rows: list[dict[str, Any]], **notes: Any) -> Comparison:
    """Median ratio and median times over the measured cases (skipped rows are kept in JSON)."""
    measured = [r for r in rows if "ratio" in r]
    if not measured:
        reasons = sorted({r["skipped"] for r in rows if "skipped" in r})
        notes["skipped"] = ("; ".join(reasons) if reasons else
                            "no case of the run is of a kind this line measures")
    return Comparison(name, median([r["ours_s"] for r in measured]),
                      median([r["baseline_s"] for r in measured]),
                      median([r["ratio"] for r in measured]), rows,
                      {"aggregate": "median over cases", "n_cases": len(measured), **notes})


@dataclass
class Throughput:
    """A printed line that is a rate, not a ratio: cases per hour of one fleet run."""

    name: str
    cases: int
    wall_s: float
    slots: int
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.cases / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def line(self) -> str:
        return (f"{self.name}: {self.per_hour:.0f} cases/h on {self.slots} slots ({self.cases} "
                f"cases in {seconds(self.wall_s)} s; {self.notes.get('summary', '')})")

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "cases_per_hour": self.per_hour, "cases": self.cases,
                "wall_s": self.wall_s, "slots": self.slots, "what": WHAT[self.name],
                **self.notes}


class Mismatch(AssertionError):
    """Both sides of a comparison did not compute the same thing: its time means nothing."""


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


@contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """Keep TF's retracing warnings off the result lines (they go to stderr anyway)."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    yield


def case_spec(case: Any) -> Any:
    """The CaseSpec of a zoo case, as the tests and probe_times build it: all probes, default
    budget, the training the zoo used."""
    from audit.manifest.case import CaseSpec

    return CaseSpec(**case.spec_fields())


SPIN = ("import time\nt = time.perf_counter()\nx = 0\nfor i in range(8_000_000):\n    x += i\n"
        "print(time.perf_counter() - t)")


def parallel_capacity() -> dict[str, float]:
    """How much two busy processes get done at once here, right now, against one alone (2.0
    on two free cores): the ceiling for fleet_parallel on a shared machine."""
    def spin(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE,
                                  text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    one, two = spin(1), spin(2)
    return {"one_process_s": one, "two_processes_s": two, "speedup": 2 * one / two}


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "processor": platform.processor()}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        pass
    info["versions"] = {p: version(p) for p in ("tensorflow", "keras", "ray", "numpy")}
    return info


def git_info() -> dict[str, Any]:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=HERE, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty_files": len(git("status", "--porcelain").splitlines())}


def zoo_cases(folder: Path, names: list[str]) -> tuple[dict[str, Any], float]:
    """The named zoo cases, built into `folder` unless its zoo.json (as written by this
    harness or `python -m audit.cli.demo build FOLDER`) already lists them; and the build time."""
    from audit.zoo import ZooCase, build_zoo

    index = folder / "zoo.json"
    known: dict[str, Any] = {}
    if index.exists():
        known = {d["name"]: ZooCase(**d) for d in json.loads(index.read_text())}
    missing = [n for n in names if n not in known]
    build_s = 0.0
    if missing:
        log(f"building {len(missing)} zoo cases in {folder} ...")
        build_s, built = timed(lambda: build_zoo(folder, missing))
        known.update({c.name: c for c in built})
        index.write_text(json.dumps([asdict(c) for c in known.values()], default=str))
        log(f"zoo built in {build_s:.1f} s")
    return {n: known[n] for n in names}, build_s
