"""Per-probe time for every zoo case: where an audit's seconds go.

Run: python benchmarks/probe_times.py [--zoo DIR] [--parts | --steps-share] [--repeats N]
                                      [SCENARIO ...]
Prints a table (seconds per probe per case, load, and the case total) and the median case total.
The measuring lives in benchmarks/run.py (which prints the same table after its comparisons);
this is the table alone.

`--parts` also fits each case of an audit-vs-fit line once under its own training config,
and splits its audit into the fixed part (loading, the cheap probes, the retrain probe's
plans, reference learner, confident learning, building and tracing the counterfactuals) and
the training steps (see `audit_parts.py` for what each column times), with the fixed part's
share of the audit and the fit / audit ratio. `--repeats N` audits each case N times and keeps
the fastest (the machine is shared: the fastest is the least disturbed).

`--steps-share` splits the audit of every faulty zoo case (or the scenarios named) the same
way, without the fit, and prints one line in the harness's form (bigger is better):

    audit_steps_share: S (CASE; target 0.8)

S is the smallest share of an audit spent in training steps (`steps` + `first_calls`, i.e.
1 - `fixed%`) over those cases that retrain (a case diagnosed without retraining, such as a
constant label or a SavedModel export, has no steps and is listed apart), CASE the case.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from audit_fit import AUDIT_LINES, audit_rows, one_fit, probe_table, probe_times
from audit_parts import parts_table, watching, with_share
from harness import Mismatch, case_spec, log, quiet_tensorflow, timed, zoo_cases

#: the faulty zoo cases whose audit cost most fits (benchmarks/README.md)
WORST = ("regression_sgd_too_brief", "multiclass_undertrained", "text_lstm_lr_too_low",
         "cnn_lr_too_high", "deep_exploding")


def audit_parts(case: Any, repeats: int, fit: bool = True) -> dict[str, Any]:
    """One fit (if asked and the case can be fitted) and the fastest of `repeats` audits,
    split into parts."""
    import keras

    from audit.engine import audit_case
    from audit.subject import load_subject

    keras.backend.clear_session()
    fits = fit and case.retrainable and case.shape in AUDIT_LINES  # as run.py's fit lines
    subject = load_subject(case_spec(case))
    fit_s = one_fit(subject) if fits else math.nan
    t = subject.training
    fit_steps = (t.epochs or 30) * -(-len(subject.inputs) // t.batch_size)
    best: dict[str, Any] | None = None
    for _ in range(repeats):
        keras.backend.clear_session()
        with watching() as watch:
            audit_s, report = timed(lambda: audit_case(case_spec(case)))
        if report.status != "ok":
            raise Mismatch(f"{case.name}: the audit ended as {report.status}: {report.error}")
        row = with_share({"case": case.name, **probe_times(report), **watch.row()})
        row.update(fit_s=fit_s, audit_s=audit_s, ratio=fit_s / audit_s,
                   primary_fault=report.primary_fault, fit_steps=fit_steps)
        if best is None or row["total"] < best["total"]:
            best = row
    assert best is not None
    return best


STEPS_SHARE_TARGET = 0.8


def steps_share_line(rows: list[dict[str, Any]]) -> str:
    """`audit_steps_share`: the smallest training share over the audited cases that train (an
    audit whose diagnosis needs no retraining, a constant label or a SavedModel export, has
    no training steps to share its time with), the case named."""
    training = [r for r in rows if r["steps_in_sequence"] > 0]
    if not training:
        return "audit_steps_share: skipped (no audited case trains)"
    worst = max(training, key=lambda r: r["fixed_share"])
    share = 1 - worst["fixed_share"]
    met = "meets" if share >= STEPS_SHARE_TARGET else "BELOW"
    untrained = sorted(r["case"] for r in rows if r["steps_in_sequence"] <= 0)
    return (f"audit_steps_share: {share:.2f} ({worst['case']}; {met} target "
            f"{STEPS_SHARE_TARGET}; over {len(training)} faulty cases that retrain; "
            f"{len(untrained)} do not: {', '.join(untrained) or 'none'})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="zoo scenarios (default: all; with --parts: "
                   f"{', '.join(WORST)})")
    p.add_argument("--zoo", help="build the zoo once into this folder and reuse it")
    p.add_argument("--parts", action="store_true", help="split each audit into its fixed "
                   "part and its training steps, beside one fit")
    p.add_argument("--steps-share", action="store_true", help="split every faulty case's "
                   "audit (no fit) and print the audit_steps_share line")
    p.add_argument("--repeats", type=int, default=1, help="audits per case (the fastest counts)")
    args = p.parse_args(argv)
    from audit.zoo import SCENARIOS

    faulty = [n for n, s in SCENARIOS.items() if s.expected_fault is not None]
    names = args.names or (list(WORST) if args.parts else faulty if args.steps_share
                           else list(SCENARIOS))
    with quiet_tensorflow(), tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        zoo, _ = zoo_cases(Path(args.zoo) if args.zoo else Path(folder), names)
        cases = list(zoo.values())
        log(f"zoo ready in {time.perf_counter() - started:.1f} s ({len(cases)} cases)")
        if not (args.parts or args.steps_share):
            print(probe_table(audit_rows(cases)))
            return
        rows = []
        for case in cases:
            row = audit_parts(case, args.repeats, fit=not args.steps_share)
            rows.append(row)
            log(f"  {case.name}: audit {row['total']:.2f} s, fit {row['fit_s']:.2f} s")
        print(parts_table(rows))
        print()
        if args.steps_share:
            print(steps_share_line(rows))
            return
        for row in rows:
            print(f"{row['case']}: fit / audit {row['ratio']:.2f} x (audit {row['audit_s']:.2f} s "
                  f"vs fit {row['fit_s']:.2f} s; fixed {row['fixed']:.2f} s = "
                  f"{100 * row['fixed_share']:.0f}%, {row['primary_fault']}); steps in "
                  f"sequence: audit {row['steps_in_sequence']:.0f} vs fit {row['fit_steps']}, "
                  f"{1000 * row['steps'] / max(row['steps_in_sequence'], 1):.2f} ms each")


if __name__ == "__main__":
    main(sys.argv[1:])
