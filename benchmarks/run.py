"""Flatline's benchmark harness: how much does each part of an audit cost next to the obvious code?

One command measures six comparisons on the scenario zoo (audit.zoo, built into a temp folder)
and prints one line each, in the form

    NAME: RATIO x (ours OURS_S s vs baseline BASE_S s)

where RATIO = baseline time / our time (bigger is better; per-case comparisons report the median
ratio over the cases and the median of each time). A per-probe time table follows, and the same
figures (per case, medians, machine, git commit) go to benchmarks/results/latest.json.

Each comparison checks that both sides computed the same thing before it trusts a time:
the perturbation baseline's outputs must equal ours, retrained weights must start equal and end
with the same loss. A mismatch is printed and the command exits with status 1.

Run `python benchmarks/run.py --help` for the options; benchmarks/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local Ray stays on loopback

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COMPARISONS = ("perturbation", "perturbation_floor", "retrain", "audit_vs_one_fit",
               "audit_vs_one_fit_conv", "audit_vs_one_fit_sequence", "fleet_parallel",
               "fleet_overhead")
TARGETS = {"perturbation": 50.0, "perturbation_floor": 0.7, "retrain": 5.0,
           "audit_vs_one_fit": 1.0, "audit_vs_one_fit_conv": 1.0,
           "audit_vs_one_fit_sequence": 1.0, "fleet_parallel": 1.7, "fleet_overhead": 0.9}
#: which audit-vs-fit line a zoo case's shape counts in (plain MLPs: `audit_vs_one_fit`; the
#: structured and two-headed models only appear in the per-probe table; exports cannot fit)
AUDIT_LINES = {"mlp": "audit_vs_one_fit", "cnn": "audit_vs_one_fit_conv",
               "text": "audit_vs_one_fit_sequence", "sequence": "audit_vs_one_fit_sequence"}
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
    "fleet_parallel": "the fleet on the local Ray with 1 worker slot vs 2 slots; ratio = 1 slot / "
                      "2 slots",
    "fleet_overhead": "a plain loop of audit_case in this process vs the fleet with 1 slot; "
                      "ratio = loop / fleet",
}
# The comparisons measured once per case; the rest are measured once per fleet run.
CHEAP_REPEATS = 5  # turns of ours and the floor per turn of the perturbation baseline
PER_CASE = ("perturbation", "perturbation_floor", "retrain", "audit_vs_one_fit",
            "audit_vs_one_fit_conv", "audit_vs_one_fit_sequence")
AUDIT_VS_FIT = {"audit_vs_one_fit", "audit_vs_one_fit_conv", "audit_vs_one_fit_sequence"}
# Small, quick cases for --quick: a healthy classifier, an MLP regression, a short training.
QUICK_CASES = ("binary_mlp_healthy", "regression_unscaled_targets", "multiclass_undertrained")
# model.fit of every retrain job costs a minute or two per case, so by default the retrain
# comparison runs on three cases: short jobs, a typical MLP, and a deep network.
RETRAIN_CASES = ("multiclass_undertrained", "regression_unscaled_targets", "deep_vanishing")
# The fleet: the whole zoo, every case with every probe (as `audit run` does by default; the
# retrain probe skips healthy models itself), the costly ones listed first (as one would order a
# manifest). About 20 s of audit work on a quiet machine, so an actor's start (~3 s: importing
# TensorFlow) does not dominate the comparison of 1 and 2 slots; ~2 min for the four runs.
FLEET_CASES = ("deep_vanishing", "deep_exploding", "multiclass_loss_mismatch",
               "regression_dead_relu", "regression_saturated", "regression_unscaled_inputs",
               "binary_class_imbalance", "regression_optimizer_stalled", "regression_lr_too_high",
               "regression_bad_data", "regression_unscaled_targets", "multiclass_undertrained",
               "linear_lr_too_low", "multiclass_deep_healthy", "binary_mlp_healthy",
               "linear_raw_inputs", "linear_healthy")
FLEET_RETRAIN = FLEET_CASES
FLEET_PROBES = ("data", "config", "sensitivity", "activations", "gradients")
QUICK_FLEET_CASES = ("multiclass_undertrained", "linear_healthy", "binary_mlp_healthy")
QUICK_FLEET_RETRAIN = ("multiclass_undertrained",)


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
        return (f"{self.name}: {ratio_text(self.ratio)} x (ours {seconds(self.ours_s)} s vs "
                f"baseline {seconds(self.baseline_s)} s)")

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "ratio": self.ratio, "ours_s": self.ours_s,
                "baseline_s": self.baseline_s, "target": TARGETS[self.name],
                "meets_target": bool(self.ratio >= TARGETS[self.name]),
                "what": WHAT[self.name], "cases": self.cases, **self.notes}


def per_case(name: str, rows: list[dict[str, Any]], **notes: Any) -> Comparison:
    """Median ratio and median times over the measured cases (skipped rows are kept in JSON)."""
    measured = [r for r in rows if "ratio" in r]
    return Comparison(name, median([r["ours_s"] for r in measured]),
                      median([r["baseline_s"] for r in measured]),
                      median([r["ratio"] for r in measured]), rows,
                      {"aggregate": "median over cases", "n_cases": len(measured), **notes})


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


# ---------------------------------------------------------------- the zoo


def case_spec(case: Any) -> Any:
    """The CaseSpec of a zoo case, as the tests and probe_times build it: all probes, default
    budget, the training the zoo used."""
    from audit.spec import CaseSpec

    return CaseSpec(**case.spec_fields())


# ---------------------------------------------------------------- perturbation (+ floor)


def perturbation_inputs(subject: Any, settings: Any) -> tuple[Any, list[tuple[str, slice]]]:
    """The sensitivity probe's own perturbed inputs (the feed the model takes), from the
    probe's own hook."""
    from audit.probes.sensitivity import probe_inputs

    _, batch, slices = probe_inputs(subject, settings)
    return batch.feed(), slices


def measure_perturbation(subject: Any, repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ours, the predict-per-slice loop and the single-call floor, interleaved, after one
    untimed warm-up of each (so no side pays for first-call tracing); the best time counts."""
    from audit.inputs import feed_len, feed_take
    from audit.probes import sensitivity
    from audit.probes.tfutil import predict, to_tensors

    settings = sensitivity.SensitivitySettings()
    model = subject.model

    def ours() -> Any:
        return sensitivity.run(subject, settings)

    def baseline() -> list[np.ndarray]:
        batch, slices = perturbation_inputs(subject, settings)
        return [model.predict(to_tensors(feed_take(batch, s)), verbose=0) for _, s in slices]

    batch, slices = perturbation_inputs(subject, settings)

    def floor() -> np.ndarray:
        return np.asarray(model(to_tensors(batch), training=False))

    # Same perturbations, same outputs: the loop's outputs must be what our one call gives.
    expected = predict(model, batch)
    got = np.concatenate([np.asarray(o, np.float32).reshape(len(o), -1)
                          for o in baseline()], axis=0)
    scale = float(np.nanmax(np.abs(expected))) if np.isfinite(expected).any() else 1.0
    same = got.shape == expected.shape and bool(np.allclose(
        got, expected, rtol=1e-4, atol=1e-5 * max(scale, 1.0), equal_nan=True))
    excluded = None
    if not same and not all(np.isfinite(w).all() for w in model.get_weights()):
        # With NaN weights the two disagree for a reason of TF's, not ours: model.predict runs
        # a graph whose fused MatMul+BiasAdd+ReLU turns NaN into 0, an eager call keeps NaN.
        excluded = ("the model has NaN/inf weights: model.predict (graph, fused ReLU) gives "
                    "finite outputs where an eager call gives NaN; timed, not counted")
        log(f"  {subject.name}: {excluded}")
    elif not same:
        with np.errstate(all="ignore"):
            diff = np.nanmax(np.abs(got - expected)) if got.shape == expected.shape else "shape"
        raise Mismatch(f"{subject.name}: predict-per-slice outputs differ from ours "
                       f"(max abs diff {diff})")
    ours(), floor()  # warm-up
    # Ours and the floor take milliseconds, so they get CHEAP_REPEATS turns per baseline turn.
    times: dict[str, list[float]] = {"ours": [], "baseline": [], "floor": []}
    for _ in range(repeats):
        times["baseline"].append(timed(baseline)[0])
        for _ in range(CHEAP_REPEATS):
            times["ours"].append(timed(ours)[0])
            times["floor"].append(timed(floor)[0])
    best = {k: min(v) for k, v in times.items()}
    common = {"case": subject.name, "rows": feed_len(batch), "slices": len(slices),
              "outputs_match": same, "repeats": repeats}
    pert = {**common, "ours_s": best["ours"], "baseline_s": best["baseline"],
            "ratio": best["baseline"] / best["ours"], "predict_calls": len(slices)}
    flo = {**common, "ours_s": best["ours"], "baseline_s": best["floor"],
           "ratio": best["floor"] / best["ours"]}
    if excluded:
        for row in (pert, flo):
            row["excluded"] = excluded
            row["ratio_if_counted"] = row.pop("ratio")
    return pert, flo


# ---------------------------------------------------------------- retrain


def retrain_settings(args: argparse.Namespace) -> Any:
    """The retrain probe's default settings, with the harness's --seeds/--epochs if given."""
    from audit.probes.retrain import RetrainSettings

    values: dict[str, Any] = {}
    if args.seeds is not None:
        values["seeds"] = args.seeds
    if args.epochs is not None:
        values.update(epochs=args.epochs, min_steps=0)
    return RetrainSettings(**values)


def retrain_jobs(subject: Any, settings: Any) -> tuple[list[Any], list[str]] | None:
    """Every job the retrain probe would train for this subject (None: it would train none),
    built fresh: the same seeds give the same initial weights each time this is called."""
    from audit.probes import retrain

    split = retrain.make_split(subject, settings)
    skill, _ = retrain.original_outcome(subject, split)
    if settings.skip_when_healthy and np.isfinite(skill) and skill >= settings.healthy_skill:
        return None
    plans = retrain.plan_variants(subject, split, settings)
    seeds = [settings.seed * 1000 + s for s in range(settings.seeds)]
    variants = retrain.build_variants(subject, split, plans)
    jobs = [(v, job) for v in variants for job in retrain.seeded_jobs(v, seeds)]
    return [job for _, job in jobs], [f"{v.plan.name}/seed{job.seed}" for v, job in jobs]


def fit_jobs(jobs: list[Any], batch_size: int) -> list[list[float]]:
    """The obvious loop: compile and fit each job, with a fresh optimizer of the same config;
    each job's per-epoch losses.

    TerminateOnNaN stops a diverged job as our trainer does (it makes the baseline faster,
    never slower)."""
    import keras

    out = []
    for job in jobs:
        optimizer = job.optimizer.__class__.from_config(job.optimizer.get_config())
        job.model.set_weights(job.start_weights())
        job.model.compile(optimizer=optimizer, loss=job.loss)
        history = job.model.fit(job.x, job.y, sample_weight=job.sample_weight,
                                epochs=job.epochs, batch_size=batch_size, shuffle=False,
                                verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()])
        out.append([float(v) for v in history.history.get("loss", [float("nan")])])
    return out


def compare_losses(names: list[str], logs: list[Any], fits: list[list[float]],
                   case: str) -> dict[str, Any]:
    """Our final epoch loss against fit's, job by job. Both sides run the same steps in a
    different float order, and over thousands of steps the last digits drift, so losses must
    agree within 0.1% of the loss's scale (the larger of fit's first and last epoch loss);
    jobs that diverged on both sides are skipped."""
    compared, diverged, strict, worst, bad = 0, 0, 0, 0.0, []
    for name, log_, losses in zip(names, logs, fits, strict=True):
        mine, theirs = (log_.losses[-1] if log_.losses else float("nan")), losses[-1]
        if not math.isfinite(mine) and not math.isfinite(theirs):
            diverged += 1
            continue
        scale = max(abs(theirs), abs(losses[0])) if math.isfinite(losses[0]) else abs(theirs)
        if not abs(mine - theirs) <= 1e-3 * scale:
            bad.append(f"{name}: ours {mine:.6g} vs fit {theirs:.6g}")
        rel = abs(mine - theirs) / max(abs(theirs), 1e-12)
        strict += rel <= 1e-3
        worst = max(worst, rel)
        compared += 1
    if bad:
        raise Mismatch(f"{case}: final losses differ: " + "; ".join(bad[:5]))
    return {"losses_compared": compared, "both_diverged": diverged,
            "losses_within_rel_1e-3": strict, "loss_max_rel_diff": worst, "losses_match": True}


def measure_retrain(subject: Any, settings: Any) -> dict[str, Any]:
    """Our trainer vs model.fit on two identical sets of the probe's jobs; only training is
    timed (cloning and building the jobs is not)."""
    from audit.probes.trainer import train_together

    built = retrain_jobs(subject, settings)
    if built is None:
        return {"case": subject.name, "skipped": "the model already does well; the probe "
                "trains no counterfactuals"}
    ours, names = built
    theirs, _ = retrain_jobs(subject, settings) or ([], [])
    # Jobs whose training rows hold NaN/inf are left out of both sides: fit's graph fuses
    # MatMul+BiasAdd+ReLU and that fused ReLU turns NaN into 0 (the loss stays finite), where
    # our trainer keeps NaN and stops the job as diverged; the two would not do the same work.
    finite = [bool(np.isfinite(j.x).all() and np.isfinite(j.y).all()) for j in ours]
    left_out = sorted({n.split("/")[0] for n, f in zip(names, finite, strict=True) if not f})
    ours, theirs, names = ([v for v, f in zip(seq, finite, strict=True) if f]
                           for seq in (ours, theirs, names))
    if not ours:
        return {"case": subject.name, "skipped": "every job trains on rows with NaN/inf"}
    for a, b in zip(ours, theirs, strict=True):
        for wa, wb in zip(a.start_weights(), b.start_weights(), strict=True):
            if not np.array_equal(wa, wb):
                raise Mismatch(f"{subject.name}: the two job sets start from different weights")
    for job in ours:
        job.shuffle = False
    batch_size = subject.training.batch_size
    ours_s, logs = timed(lambda: train_together(ours, batch_size, chunks=settings.chunks))
    base_s, fits = timed(lambda: fit_jobs(theirs, batch_size))
    checks = compare_losses(names, logs, fits, subject.name)
    steps = sum(math.ceil(len(j.x) / batch_size) * j.epochs for j in ours)
    return {"case": subject.name, "ours_s": ours_s, "baseline_s": base_s,
            "ratio": base_s / ours_s, "jobs": len(ours),
            "plans": sorted({n.split("/")[0] for n in names}), "epochs_max":
            max(j.epochs for j in ours), "batch_size": batch_size, "steps_planned": steps,
            **checks, "initial_weights_match": True, "left_out_nan_input_plans": left_out}


# ---------------------------------------------------------------- audit vs one fit


def one_fit(subject: Any) -> float:
    """One plain fit of a fresh clone under the model's own training config, timed (compile
    and fit, not the cloning)."""
    import keras

    from audit.probes.tfutil import (
        encode_targets,
        make_loss,
        make_optimizer,
        subject_head,
        to_tensors,
    )

    t = subject.training
    model = keras.models.clone_model(subject.model)
    y = encode_targets(subject.y, subject.task, t.loss, subject_head(subject).units)

    def fit() -> None:
        model.compile(optimizer=make_optimizer(t.optimizer, t.learning_rate, None,
                                               t.optimizer_config),
                      loss=make_loss(t.loss, t.from_logits))
        model.fit(to_tensors(subject.inputs.feed()), y, epochs=t.epochs or 30,
                  batch_size=t.batch_size, verbose=0)

    return timed(fit)[0]


def probe_times(report: Any) -> dict[str, float]:
    """Seconds per probe from a report's metrics; `load` is the rest of the case's time
    (loading the model and data, and the diagnosis, which takes milliseconds)."""
    from audit import probes

    spent = {r.probe: r.value for r in report.metrics if r.metric == "duration_s"}
    row = {name: float(spent.get(name, float("nan"))) for name in probes.PROBES}
    row["load"] = report.duration_s - sum(v for v in row.values() if math.isfinite(v))
    row["total"] = report.duration_s
    return row


def measure_audit(case: Any, subject: Any, with_fit: bool) -> tuple[dict[str, Any] | None,
                                                                   dict[str, Any]]:
    """One fit (if asked), then the whole audit of the same case, side by side; also the
    audit's per-probe times."""
    from audit.engine import audit_case

    fit_s = one_fit(subject) if with_fit else float("nan")
    audit_s, report = timed(lambda: audit_case(case_spec(case)))
    if report.status != "ok":
        raise Mismatch(f"{case.name}: the audit ended as {report.status}: {report.error}")
    times = {"case": case.name, **probe_times(report)}
    if not with_fit:
        return None, times
    t = subject.training
    return {"case": case.name, "ours_s": audit_s, "baseline_s": fit_s, "ratio": fit_s / audit_s,
            "fit_epochs": t.epochs or 30, "batch_size": t.batch_size, "rows": len(subject.inputs),
            "verdict": report.verdict, "primary_fault": report.primary_fault}, times


# ---------------------------------------------------------------- the fleet


def fleet_manifest(cases: list[Any], retrain_names: set[str], folder: Path) -> Any:
    """A manifest of the zoo cases: the cheap probes for all, retrain too for some."""
    from audit.spec import parse_manifest

    entries = []
    for case in cases:
        entry: dict[str, Any] = case.spec_fields()
        if case.name in retrain_names:
            entry["probes"] = [*FLEET_PROBES, "retrain"]
        entries.append(entry)
    doc = {"name": "bench-fleet", "output": str(folder / "unused"),
           "resources": {"num_cpus": 1}, "probes": list(FLEET_PROBES), "cases": entries}
    return parse_manifest(doc, where="benchmark fleet", base_dir=str(folder))


def measure_fleet(cases: list[Any], retrain_names: set[str], folder: Path,
                  wanted: set[str]) -> list[Comparison]:
    """The plain loop, 1 slot and 2 slots, back to back on one local Ray (2 CPUs)."""
    import ray

    from audit.engine import audit_case
    from audit.fleet import FleetOptions, run_fleet

    manifest = fleet_manifest(cases, retrain_names, folder)
    specs = manifest.cases()
    capacity = parallel_capacity()
    log(f"fleet: two busy processes get {capacity['speedup']:.2f}x the work of one done here "
        "now")
    used = {"cases": [c.name for c in cases], "probes": list(FLEET_PROBES),
            "retrain_on": sorted(retrain_names), "resources": {"num_cpus": 1},
            "ray": "local, ray.init(address='local', num_cpus=2)",
            "budget": manifest.budget.model_dump()}
    times: dict[str, float] = {}
    detail: dict[str, Any] = {}
    if "fleet_overhead" in wanted:
        log(f"fleet: plain loop over {len(specs)} cases ...")

        def loop() -> dict[str, float]:
            spent = {}
            for spec in specs:
                report = audit_case(spec)
                if report.status != "ok":
                    raise Mismatch(f"fleet loop: {spec.name} ended as {report.status}")
                spent[spec.name] = report.duration_s
            return spent

        times["loop"], spent = timed(loop)
        detail["loop"] = {"wall_s": times["loop"], "cases_s": sum(spent.values()),
                          "case_s": spent}
    # address="local": always a fresh Ray of our own, never another one running on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    # 1 slot right after the loop (fleet_overhead compares those two), then 2, 2, 1: a burst of
    # someone else's load then hits both settings alike, and the best run of each counts.
    order = [1, 2, 2, 1] if "fleet_parallel" in wanted else [1]
    runs: dict[int, list[float]] = {1: [], 2: []}
    try:
        for k, slots in enumerate(order):
            label = f"{slots}slot_{'ab'[k // 2] if len(order) > 1 else 'a'}"
            capacity_now = parallel_capacity()
            log(f"fleet: {len(specs)} cases with {slots} slot(s) ...")
            output = str(folder / f"out-{label}")
            options = FleetOptions(output=output, max_concurrency=slots, progress=False,
                                   handle_signals=False)
            elapsed, result = timed(lambda o=options: run_fleet(manifest, o, cases=specs))
            if result.n_ok != len(specs) or result.concurrency != slots:
                raise Mismatch(f"fleet with {slots} slot(s): {result.n_ok}/{len(specs)} ok, "
                               f"concurrency {result.concurrency}")
            runs[slots].append(elapsed)
            detail[label] = {"wall_s": elapsed, **fleet_case_times(output),
                             "cpu_parallel_capacity_before": capacity_now["speedup"]}
    finally:
        ray.shutdown()
    times["1slot"] = runs[1][0]  # the run next to the loop
    if runs[2]:
        times["1slot_best"], times["2slot_best"] = min(runs[1]), min(runs[2])
    used["runs"] = detail
    used["run_order"] = [*(["loop"] if "loop" in detail else []),
                         *(f"{s} slot(s)" for s in order)]
    used["cpu_parallel_capacity_start"] = capacity
    used["cpu_parallel_capacity_after"] = parallel_capacity()
    out = []
    if "fleet_parallel" in wanted:
        out.append(Comparison("fleet_parallel", times["2slot_best"], times["1slot_best"],
                              times["1slot_best"] / times["2slot_best"], [], {
                                  "fleet": used, "timing": "best of two runs each, in the "
                                  "order 1, 2, 2, 1 slot(s)"}))
    if "fleet_overhead" in wanted:
        out.append(Comparison("fleet_overhead", times["1slot"], times["loop"],
                              times["loop"] / times["1slot"], [], {
                                  "fleet": used, "timing": "the loop, then the first 1-slot "
                                  "run", "note": "the loop runs in this process (TF "
                                  "already imported, default thread pools); the fleet's actor "
                                  "starts fresh and gets 1 CPU"}))
    return out


def fleet_case_times(output: str) -> dict[str, Any]:
    """Where a fleet run's time went: each case's audit time inside its actor, and how many
    actors ran them (wall time minus audit time is Ray's share: actor start, scheduling)."""
    from audit.reports import query

    _, rows = query(output, "select name, duration_s, worker from cases")
    return {"cases_s": sum(r[1] for r in rows), "case_s": {r[0]: r[1] for r in rows},
            "actors": len({r[2] for r in rows})}


# ---------------------------------------------------------------- the probe table


def probe_table(rows: list[dict[str, Any]]) -> str:
    """Seconds per probe per case (columns: load, each probe, total) and the median total."""
    from audit import probes

    header = ["case", "load", *probes.PROBES, "total"]
    lines = [" ".join(f"{h:>12}" if i else f"{h:<30}" for i, h in enumerate(header))]
    for row in rows:
        cells = " ".join(f"{row[h]:>12.2f}" for h in header[1:])
        lines.append(f"{row['case']:<30} {cells}")
    if rows:
        lines.append(f"median case total: {median([r['total'] for r in rows]):.2f} s")
    return "\n".join(lines)


def audit_rows(cases: list[Any]) -> list[dict[str, Any]]:
    """Audit each case once (all probes, default budget) and return its per-probe times."""
    from audit.subject import load_subject

    rows = []
    for case in cases:
        _, row = measure_audit(case, load_subject(case_spec(case)), with_fit=False)
        rows.append(row)
        log(f"  {case.name}: {row['total']:.2f} s")
    return rows


# ---------------------------------------------------------------- the run


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


@dataclass
class Plan:
    """Which zoo cases each part of the run uses."""

    cases: list[str]  # per-case comparisons and the probe table
    retrain: list[str]  # the retrain comparison (model.fit of every job is the slow part)
    fleet: list[str]
    fleet_retrain: set[str]


def choose(args: argparse.Namespace) -> Plan:
    """Resolve --cases, --quick, --retrain-cases, --fleet-cases and --fleet-retrain."""
    from audit.zoo import SCENARIOS

    def names(text: str | None) -> list[str] | None:
        if text is None:
            return None
        chosen = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in SCENARIOS]
        if unknown:
            raise SystemExit(f"error: unknown zoo case(s) {unknown}; valid: {list(SCENARIOS)}")
        return chosen

    given = names(args.cases)
    cases = given or list(QUICK_CASES if args.quick else SCENARIOS)
    retrain = names(args.retrain_cases) or given or list(QUICK_CASES if args.quick
                                                         else RETRAIN_CASES)
    fleet = names(args.fleet_cases) or given or list(QUICK_FLEET_CASES if args.quick
                                                     else FLEET_CASES)
    default_retrain = QUICK_FLEET_RETRAIN if args.quick else FLEET_RETRAIN
    fleet_retrain = set(names(args.fleet_retrain) or [n for n in fleet if n in default_retrain])
    return Plan(cases, retrain, fleet, fleet_retrain)


def zoo_cases(folder: Path, names: list[str]) -> tuple[dict[str, Any], float]:
    """The named zoo cases, built into `folder` unless its zoo.json (as written by this
    harness or `python -m audit.demo build FOLDER`) already lists them; and the build time."""
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


def case_names(plan: Plan, wanted: set[str], table: bool) -> list[str]:
    """The zoo cases the per-case part of the run visits, in order."""
    per_case = wanted & {"perturbation", "perturbation_floor", *AUDIT_VS_FIT} or table
    names = [*(plan.cases if per_case else []), *(plan.retrain if "retrain" in wanted else [])]
    return list(dict.fromkeys(names))


def measure_cases(plan: Plan, zoo: dict[str, Any], wanted: set[str], args: argparse.Namespace,
                  failures: list[str]) -> tuple[dict[str, list[dict[str, Any]]],
                                                list[dict[str, Any]]]:
    """The per-case comparisons, case by case (each side measured next to the other), and
    the per-probe times of each case's audit."""
    import keras

    from audit.subject import load_subject

    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in PER_CASE}
    table: list[dict[str, Any]] = []
    settings = retrain_settings(args)
    for name in dict.fromkeys(case_names(plan, wanted, args.table)):
        case = zoo[name]
        log(f"case {name}:")
        keras.backend.clear_session()  # no case pays for the models earlier cases left behind
        try:
            subject = load_subject(case_spec(case))
            in_cases = name in plan.cases
            if in_cases and wanted & {"perturbation", "perturbation_floor"}:
                pert, flo = measure_perturbation(subject, args.repeats)
                rows["perturbation"].append(pert)
                rows["perturbation_floor"].append(flo)
                log(f"  perturbation {pert.get('ratio', math.nan):.1f}x, floor "
                    f"{flo.get('ratio', math.nan):.2f}x")
            if name in plan.retrain and "retrain" in wanted:
                row = measure_retrain(subject, settings)
                rows["retrain"].append(row)
                log(f"  retrain {row.get('ratio', float('nan')):.1f}x ({row.get('jobs', 0)} "
                    "jobs)" if "ratio" in row else f"  retrain skipped: {row['skipped']}")
            line = AUDIT_LINES.get(case.shape)
            if in_cases and (wanted & AUDIT_VS_FIT or args.table):
                row, times = measure_audit(case, subject, line in wanted and case.retrainable)
                if row is not None:
                    rows[line].append(row)
                    log(f"  fit {row['baseline_s']:.2f} s")
                table.append(times)
                log(f"  audit {times['total']:.2f} s")
        except Mismatch as exc:
            failures.append(str(exc))
            log(f"  MISMATCH: {exc}")
    return rows, table


def run(args: argparse.Namespace) -> int:
    """Measure, print the lines and the table, write the JSON; 1 if a check failed."""
    wanted = set(args.only.split(",")) if args.only else set(COMPARISONS)
    unknown = wanted - set(COMPARISONS)
    if unknown:
        raise SystemExit(f"error: unknown comparison(s) {sorted(unknown)}; valid: "
                         f"{list(COMPARISONS)}")
    plan = choose(args)
    if args.table is None:
        args.table = bool(wanted & AUDIT_VS_FIT)
    fleet_on = bool(wanted & {"fleet_parallel", "fleet_overhead"})
    started, wall0 = time.time(), time.perf_counter()
    git_start = git_info()  # others may commit to this tree while the run lasts
    load_start = os.getloadavg()
    log(f"load average at start: {load_start[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    failures: list[str] = []
    settings = retrain_settings(args)
    with quiet_tensorflow(), tempfile.TemporaryDirectory(prefix="flatline-bench-") as tmp:
        folder = Path(tmp)
        needed = [*case_names(plan, wanted, args.table), *(plan.fleet if fleet_on else [])]
        zoo, zoo_s = zoo_cases(Path(args.zoo) if args.zoo else folder / "zoo",
                               list(dict.fromkeys(needed)))
        rows, table = measure_cases(plan, zoo, wanted, args, failures)
        results: list[Comparison] = []
        for name in PER_CASE:
            if name not in wanted:
                continue
            notes: dict[str, Any] = {}
            if name == "retrain":
                notes["settings"] = settings.model_dump(mode="json")
                notes["baseline_callbacks"] = ["TerminateOnNaN"]
            if name in ("perturbation", "perturbation_floor"):
                notes["timing"] = (f"after a warm-up, interleaved; best of {args.repeats} "
                                   f"(baseline) and {args.repeats * CHEAP_REPEATS} (ours, "
                                   "floor)")
            results.append(per_case(name, rows[name], **notes))
        if fleet_on:
            try:
                results += measure_fleet([zoo[n] for n in plan.fleet], plan.fleet_retrain,
                                         folder / "fleet", wanted)
            except Mismatch as exc:
                failures.append(str(exc))
                log(f"MISMATCH: {exc}")

    for comparison in results:
        print(comparison.line)
    if table:
        print()
        print(probe_table(table))
    for failure in failures:
        print(f"MISMATCH: {failure}")
    duration = time.perf_counter() - wall0
    doc = {
        "schema": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": duration,
        "command": ["python", "benchmarks/run.py", *sys.argv[1:]],
        "git": {**git_start, "at_end": (end := git_info()),
                "changed_during_run": end != git_start},
        "machine": {**machine(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "zoo_build_s": zoo_s,
        "plan": {"cases": plan.cases, "retrain": plan.retrain, "fleet": plan.fleet,
                 "fleet_retrain": sorted(plan.fleet_retrain), "repeats": args.repeats},
        "comparisons": {c.name: c.to_json() for c in results},
        "probe_times": table,
        "probe_times_median_total_s": median([r["total"] for r in table]),
        "failures": failures,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    log(f"wrote {out} ({duration:.0f} s in all)")
    return 1 if failures else 0


def parser() -> argparse.ArgumentParser:
    lines = "\n".join(textwrap.fill(v, 79, initial_indent=f"  {k:<19}",
                                   subsequent_indent=" " * 21) for k, v in WHAT.items())
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=textwrap.dedent("""\
            Measure Flatline against the obvious code on the scenario zoo (audit/zoo.py).

            Prints one line per comparison,
              NAME: RATIO x (ours OURS_S s vs baseline BASE_S s)
            where RATIO = baseline time / our time (bigger is better; for the comparisons
            measured per zoo case, the median over the cases and the median of each time),
            then a per-probe time table, and writes the figures per case, with the machine
            and the git commit, to benchmarks/results/latest.json. Each comparison first
            checks that both sides computed the same result; a failed check prints
            MISMATCH and the exit status is 1. The full run takes 9-10 minutes on
            2 cores (one of them building the zoo), --quick about 2."""),
        epilog=f"comparisons:\n{lines}\n\n" + textwrap.dedent("""\
            examples:
              python benchmarks/run.py --quick
              python benchmarks/run.py --only retrain --retrain-cases deep_vanishing
              python benchmarks/run.py --zoo /tmp/zoo   # build once, reuse next time
            More in benchmarks/README.md."""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", metavar="A,B", help="zoo cases for the per-case comparisons "
                   "(default: all 17; see audit/zoo.py); the fleet uses them too unless "
                   "--fleet-cases is given")
    p.add_argument("--quick", action="store_true", help=f"a smaller run: {len(QUICK_CASES)} "
                   f"cases ({', '.join(QUICK_CASES)}), a fleet of {len(QUICK_FLEET_CASES)}, "
                   "1 retrain seed")
    p.add_argument("--only", metavar="NAME,NAME", help="run only these comparisons (names "
                   "below; default: all)")
    p.add_argument("--retrain-cases", metavar="A,B", help="cases for the retrain comparison "
                   f"(default: --cases if given, else {', '.join(RETRAIN_CASES)}): fitting "
                   "every job costs 1-2 min per case. A case the probe would not retrain (it "
                   "already does well) is listed as skipped")
    p.add_argument("--fleet-cases", metavar="A,B", help="the fleet's cases (default: "
                   f"{len(FLEET_CASES)} cases, FLEET_CASES in this file)")
    p.add_argument("--fleet-retrain", metavar="A,B", help="fleet cases that also run the "
                   f"retrain probe (default: {len(FLEET_RETRAIN)} of the default fleet's)")
    p.add_argument("--repeats", type=int, default=None, metavar="N", help="turns of the "
                   f"perturbation baseline (ours and the floor get {CHEAP_REPEATS} per turn), "
                   "interleaved; the best time of each counts (default: 3)")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="retrain seeds per "
                   "plan (default: the probe's, 3); fewer makes the retrain comparison cheaper")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="retrain epoch "
                   "budget per job, with no minimum step count (default: the probe's, 30 "
                   "epochs and at least 300 steps)")
    p.add_argument("--table", action=argparse.BooleanOptionalAction, default=None,
                   help="print the per-probe time table (default: when audit_vs_one_fit runs, "
                   "whose audits it reads; otherwise it costs one audit per case)")
    p.add_argument("--zoo", metavar="DIR", help="keep the zoo in DIR and reuse the cases its "
                   "zoo.json lists (default: build into a temp folder, ~1 min for all 17)")
    p.add_argument("--json", default=str(RESULTS / "latest.json"), metavar="PATH",
                   help="where to write the figures (default: benchmarks/results/latest.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.repeats is None:
        args.repeats = 3
    if args.quick and args.seeds is None:
        args.seeds = 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
