"""`retrain`: the compiled trainer against `compile` + `model.fit` per job, on the very jobs
the retrain probe would train (initial weights and final losses checked equal)."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
from harness import Mismatch, timed


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
    """Every job of the probe's full plan x seed grid for this subject (None: it would train
    none), built fresh by the probe's own `prepare`: the same seeds give the same initial
    weights each time this is called."""
    from audit.probes import retrain

    prepared = retrain.prepare(subject, settings)
    if settings.skip_when_healthy and prepared.healthy:
        return None
    jobs = prepared.grid(subject)
    return [job for _, job in jobs], [f"{v.plan.name}/seed{job.seed}" for v, job in jobs]


def fit_jobs(jobs: list[Any], batch_size: int) -> list[list[float]]:
    """The obvious loop: compile and fit each job, with a fresh optimizer of the same config;
    each job's per-epoch losses.

    TerminateOnNaN stops a diverged job as our trainer does (it makes the baseline faster,
    never slower)."""
    import keras

    from audit.probes.tfutil import to_tensors

    out = []
    for job in jobs:
        optimizer = job.optimizer.__class__.from_config(job.optimizer.get_config())
        job.model.set_weights(job.start_weights())
        job.model.compile(optimizer=optimizer, loss=job.loss)
        history = job.model.fit(to_tensors(job.x), job.y, sample_weight=job.sample_weight,
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


def finite_feed(feed: Any) -> bool:
    """Every float array of a feed (one array, a list or a dict) is finite."""
    arrays = feed.values() if isinstance(feed, dict) else feed if isinstance(feed, list) else [
        feed]
    return all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f")


def measure_retrain(subject: Any, settings: Any) -> dict[str, Any]:
    """Our trainer vs model.fit on two identical sets of the probe's jobs; only training is
    timed (cloning and building the jobs is not)."""
    from audit.inputs import feed_len
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
    finite = [bool(finite_feed(j.x) and np.isfinite(j.y).all()) for j in ours]
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
    steps = sum(math.ceil(feed_len(j.x) / batch_size) * j.epochs for j in ours)
    return {"case": subject.name, "ours_s": ours_s, "baseline_s": base_s,
            "ratio": base_s / ours_s, "jobs": len(ours),
            "plans": sorted({n.split("/")[0] for n in names}), "epochs_max":
            max(j.epochs for j in ours), "batch_size": batch_size, "steps_planned": steps,
            **checks, "initial_weights_match": True, "left_out_nan_input_plans": left_out}
