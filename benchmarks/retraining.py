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


#: how far our final loss may sit from fit's, as a share of the loss's scale: the two run the
#: same steps in a different float order (and another CPU's kernels order them differently
#: again), so over thousands of steps the last digits drift, by 0.35% at most on the zoo; a
#: wrong computation (another learning rate, skipped steps, other weights) moves it by far more
LOSS_RTOL = 1e-2
#: a loss this many times above the best epoch loss either side reached has diverged: two
#: diverged runs agree whatever the size of their overflow (4.47e+25 against 4.51e+25)
DIVERGED_FACTOR = 1e6


def diverged(loss: float, reference: float) -> bool:
    """The run blew up: NaN, inf, or huge next to `reference` (its best finite epoch loss)."""
    return not math.isfinite(loss) or abs(loss) > DIVERGED_FACTOR * max(reference, 1.0)


def losses_agree(mine: list[float], theirs: list[float]) -> tuple[bool, bool]:
    """(agree, both diverged) for one job's per-epoch losses, ours and fit's."""
    last_mine = mine[-1] if mine else float("nan")
    last_theirs = theirs[-1] if theirs else float("nan")
    finite = [abs(v) for v in [*mine, *theirs] if math.isfinite(v)]
    best = min(finite) if finite else 1.0
    gone_mine, gone_theirs = diverged(last_mine, best), diverged(last_theirs, best)
    if gone_mine or gone_theirs:
        return gone_mine and gone_theirs, gone_mine and gone_theirs
    first = theirs[0] if theirs and math.isfinite(theirs[0]) else last_theirs
    scale = max(abs(last_theirs), abs(first))
    return abs(last_mine - last_theirs) <= LOSS_RTOL * scale, False


def compare_losses(names: list[str], logs: list[Any], fits: list[list[float]],
                   case: str) -> dict[str, Any]:
    """Our final epoch loss against fit's, job by job: within LOSS_RTOL of the loss's scale
    (the larger of fit's first and last epoch loss), or diverged on both sides."""
    compared, both_gone, strict, worst, bad = 0, 0, 0, 0.0, []
    for name, log_, losses in zip(names, logs, fits, strict=True):
        mine = list(log_.losses)
        agree, gone = losses_agree(mine, losses)
        if gone:
            both_gone += 1
            continue
        last_mine = mine[-1] if mine else float("nan")
        if not agree:
            bad.append(f"{name}: ours {last_mine:.6g} vs fit {losses[-1]:.6g}")
            continue
        rel = abs(last_mine - losses[-1]) / max(abs(losses[-1]), 1e-12)
        strict += rel <= 1e-3
        worst = max(worst, rel)
        compared += 1
    if bad:
        raise Mismatch(f"{case}: final losses differ (beyond {LOSS_RTOL:.0%} of the loss's "
                       "scale): " + "; ".join(bad[:5]))
    return {"losses_compared": compared, "both_diverged": both_gone,
            "losses_within_rel_1e-3": strict, "loss_max_rel_diff": worst,
            "loss_rtol": LOSS_RTOL, "losses_match": True}


def finite_feed(feed: Any) -> bool:
    """Every float array of a feed (one array, a list or a dict) is finite."""
    arrays = feed.values() if isinstance(feed, dict) else feed if isinstance(feed, list) else [
        feed]
    return all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f")


def measure_retrain(subject: Any, settings: Any) -> dict[str, Any]:
    """Our trainer vs model.fit on two identical sets of the probe's jobs; only training is
    timed (cloning and building the jobs is not)."""
    from audit.probes.retrain.trainer import train_together
    from audit.subject.inputs import feed_len

    if not subject.retrainable:
        return {"case": subject.name, "skipped": "a SavedModel export has no config to clone: "
                "the retrain probe does not apply"}
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
