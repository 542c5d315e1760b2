"""`perturbation` and `perturbation_floor`: the sensitivity probe's one batched call against
one `model.predict` per perturbation slice, and against the bare model call (the floor)."""

from __future__ import annotations

from typing import Any

import numpy as np
from harness import Mismatch, log, timed

CHEAP_REPEATS = 5  # turns of ours and the floor per turn of the perturbation baseline


def head(out: Any) -> np.ndarray:
    """The audited head of a model's output as rows x values: a SavedModel export answers with
    a dict of its signature's outputs, of which the audited head is the first (as
    `tfutil.predict` reads it); a list takes its first too."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    elif isinstance(out, list | tuple):
        out = out[0]
    values = np.asarray(out, np.float32)
    return values.reshape(len(values), -1)

def perturbation_inputs(subject: Any, settings: Any) -> tuple[Any, list[tuple[str, slice]]]:
    """The sensitivity probe's own perturbed inputs (the feed the model takes), from the
    probe's own hook."""
    from audit.probes.sensitivity import probe_inputs

    _, batch, slices = probe_inputs(subject, settings)
    return batch.feed(), slices


def measure_perturbation(subject: Any, repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ours, the predict-per-slice loop and the single-call floor, interleaved, after one
    untimed warm-up of each (so no side pays for first-call tracing); the best time counts."""
    from audit.probes import sensitivity
    from audit.probes.tfutil import predict, to_tensors
    from audit.subject.inputs import feed_len, feed_take

    settings = sensitivity.SensitivitySettings()
    model = subject.model

    def ours() -> Any:
        return sensitivity.run(subject, settings)

    def baseline() -> list[np.ndarray]:
        batch, slices = perturbation_inputs(subject, settings)
        return [head(model.predict(to_tensors(feed_take(batch, s)), verbose=0))
                for _, s in slices]

    batch, slices = perturbation_inputs(subject, settings)

    def floor() -> np.ndarray:
        return head(model(to_tensors(batch), training=False))

    # Same perturbations, same outputs: the loop's outputs must be what our one call gives.
    expected = predict(model, batch)
    got = np.concatenate(baseline(), axis=0)
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
