"""What an audit costs as a model grows: `audit_case` against one ordinary fit of the same model.

    python benchmarks/scaling.py                 # the wide line (2 x 256, 20,000 rows)
    python benchmarks/scaling.py --large         # also 3 x 1024 on 50,000 rows (minutes)
    python benchmarks/scaling.py --table         # audit time over params x rows (~15 min)

Each case is a plain MLP on 16 standardized features, trained for its own 10 epochs with Adam at
1e-9 (`lr_too_low`: the audit must retrain it to find that; at 1e-7 a 10-epoch fit of the
3 x 1024 model on 50,000 rows still reaches R^2 0.84). The baseline is one
`compile` + `fit` of a fresh clone for those 10 epochs on all rows; ours is the whole
`audit_case`. Both sides are checked to do what they claim: the fit reproduces the symptom
(validation-free skill on its own rows stays under 0.5) and the audit names `lr_too_low`.
Prints `NAME: RATIO x (ours ... s vs baseline ... s)` with RATIO = fit / audit (target >= 1).

The table's fit column is one measured epoch (on at most 20,000 rows) scaled to all rows and
10 epochs: a real fit of a 2M-parameter model on 2M rows would take hours here. Its audit
column is the real `audit_case`, which samples `budget.max_rows` (100,000) rows of a bigger
table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LINES = {"audit_vs_one_fit_wide": ((256, 256), 20_000),
         "audit_vs_one_fit_large": ((1024, 1024, 1024), 50_000)}
RATE = 1e-9  # Adam's rate: far too low for any of these models to learn in 10 epochs
TABLE_WIDTHS = ((32, 32), (256, 256), (1024, 1024, 1024))
TABLE_ROWS = (2_000, 200_000, 2_000_000)


def build(folder: Path, hidden: tuple[int, ...], rows: int) -> tuple[Path, Path, int]:
    """An lr_too_low MLP trained the ordinary way, saved with its data; its parameter count."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 16)).astype(np.float32)
    y = (np.tanh(x @ rng.normal(size=16) / 4) + 0.1 * rng.normal(size=rows)).astype(np.float32)
    model = keras.Sequential([keras.Input((16,)),
                              *(keras.layers.Dense(h, activation="relu") for h in hidden),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(RATE), "mse")
    # a shipped model, barely trained (one epoch of at most 2,000 rows: at 1e-9 more changes
    # nothing but the time it takes)
    model.fit(x[:2_000], y[:2_000], epochs=1, batch_size=32, verbose=0)
    name = "x".join(map(str, hidden)) + f"-{rows}"
    model_path, data_path = folder / f"{name}.keras", folder / f"{name}.parquet"
    model.save(model_path)
    pq.write_table(pa.table({**{f"x{j}": x[:, j] for j in range(16)}, "y": y}), data_path)
    return model_path, data_path, model.count_params()


def case_spec(model_path: Path, data_path: Path) -> Any:
    """The case as a user would write it: the model's own 10 epochs at batch 32."""
    from audit.manifest.case import CaseSpec, Training

    return CaseSpec(name=model_path.stem, model=str(model_path), data=str(data_path),
                    label="y", training=Training(epochs=10, batch_size=32))


def fresh_clone(subject: Any) -> Any:
    """The subject's model, re-initialized and compiled as it was trained (Adam 1e-9, mse)."""
    import keras

    clone = keras.models.clone_model(subject.model)
    clone.compile(keras.optimizers.Adam(RATE), "mse")
    return clone


def measure(model_path: Path, data_path: Path) -> dict[str, Any]:
    """One ordinary fit for the model's own 10 epochs, then the whole audit."""
    from audit.probes import outcomes
    from audit.subject import load_subject

    subject = load_subject(case_spec(model_path, data_path))
    clone = fresh_clone(subject)
    x = subject.inputs.feed()
    started = time.perf_counter()
    clone.fit(x, subject.y, epochs=10, batch_size=32, verbose=0)
    fit_s = time.perf_counter() - started
    fit_skill = outcomes.r2(subject.y, clone.predict(x, verbose=0, batch_size=4096))
    row = {"fit_s": fit_s, **audit_only(model_path, data_path), "fit_skill": fit_skill}
    row["ratio"] = fit_s / row["audit_s"]
    row["checks_pass"] = bool(fit_skill < 0.5 and row["primary_fault"] == "lr_too_low")
    return row


def audit_only(model_path: Path, data_path: Path) -> dict[str, Any]:
    """The whole audit of a scaling case, and what its retrain probe spent."""
    from audit.engine import audit_case

    started = time.perf_counter()
    report = audit_case(case_spec(model_path, data_path))
    metrics = {(m.probe, m.metric): m.value for m in report.metrics}
    return {"audit_s": time.perf_counter() - started, "primary_fault": report.primary_fault,
            "retrain_s": metrics.get(("retrain", "duration_s"), float("nan")),
            "trainings": metrics.get(("retrain", "trainings"), float("nan")),
            "steps": metrics.get(("retrain", "length.steps"), float("nan")),
            "cut_by_budget": metrics.get(("retrain", "length.cut_by_budget"), float("nan")),
            "baseline_reproduces": metrics.get(("retrain", "baseline.reproduces"),
                                               float("nan"))}


def estimated_fit(model_path: Path, data_path: Path, rows: int) -> float:
    """Seconds of a 10-epoch fit on all rows, from one timed epoch on at most 20,000 rows
    (after a short warm-up, so tracing is not counted)."""
    from audit.subject import load_subject

    subject = load_subject(case_spec(model_path, data_path))
    clone = fresh_clone(subject)
    n = min(len(subject.y), 20_000)
    x, y = subject.inputs.take(np.arange(n)).feed(), subject.y[:n]
    clone.fit(x, y, epochs=1, batch_size=32, verbose=0, steps_per_epoch=8)
    started = time.perf_counter()
    clone.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return (time.perf_counter() - started) * (rows / n) * 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="also the 3 x 1024 line")
    parser.add_argument("--table", action="store_true", help="audit time over params x rows")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="flatline-scaling-") as tmp:
        folder = Path(tmp)
        for name, (hidden, rows) in LINES.items():
            if name.endswith("large") and not args.large:
                continue
            row = measure(*build(folder, hidden, rows)[:2])
            print(f"{name}: {row['ratio']:.2f} x (ours {row['audit_s']:.1f} s vs baseline "
                  f"{row['fit_s']:.1f} s)")
            print(f"  {row}", file=sys.stderr)
            failed |= not row["checks_pass"]
        if args.table:
            print("\n| params | rows | fit, 10 epochs (est.) | audit | fit / audit | trainings "
                  "| steps each | fault found |\n|---|---|---|---|---|---|---|---|")
            for hidden in TABLE_WIDTHS:
                for rows in TABLE_ROWS:
                    model_path, data_path, params = build(folder, hidden, rows)
                    fit_s = estimated_fit(model_path, data_path, rows)
                    row = audit_only(model_path, data_path)
                    print(f"| {params:,} | {rows:,} | {fit_s:.1f} s | {row['audit_s']:.1f} s | "
                          f"{fit_s / row['audit_s']:.2f} | {row['trainings']:.0f} | "
                          f"{row['steps']:.0f} | {row['primary_fault']} |", flush=True)
                    failed |= row["primary_fault"] != "lr_too_low"
                    model_path.unlink()
                    data_path.unlink()
    if failed:
        print("MISMATCH: a fit did not reproduce the symptom or the audit missed lr_too_low")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
