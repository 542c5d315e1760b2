"""Flatline's benchmark harness: how much does each part of an audit cost next to the obvious code?

One command measures eight comparisons on the scenario zoo (audit.zoo, built into a temp
folder) and prints one line each, in the form

    NAME: RATIO x (ours OURS_S s vs baseline BASE_S s)

(a line that applies to no case of the run says `NAME: skipped (why)`), then the mixed fleet's
throughput, `fleet_mixed: N cases/h on 2 slots (...)`.

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
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local Ray stays on loopback

from audit_fit import AUDIT_LINES, measure_audit, probe_table
from fleet_runs import measure_fleet, measure_mixed
from harness import (
    COMPARISONS,
    RESULTS,
    WHAT,
    Comparison,
    Mismatch,
    Throughput,
    case_spec,
    git_info,
    log,
    machine,
    median,
    per_case,
    quiet_tensorflow,
    zoo_cases,
)
from nights import CHEAP_CASES, LONG_CASE, measure_longest_first, measure_nightly_validate
from perturbation import CHEAP_REPEATS, measure_perturbation
from retraining import measure_retrain, retrain_settings

# The comparisons measured once per case; the rest are measured once per fleet run.
PER_CASE = ("perturbation", "perturbation_floor", "retrain", "audit_vs_one_fit",
            "audit_vs_one_fit_conv", "audit_vs_one_fit_sequence")
AUDIT_VS_FIT = {"audit_vs_one_fit", "audit_vs_one_fit_conv", "audit_vs_one_fit_sequence"}
WORST = "audit_vs_one_fit_worst"  # printed with the three lines above; --only may name it
# Small, quick cases for --quick, one of each kind the harness must handle: a faulty MLP it
# retrains and fits, a model with several named inputs (preprocessing inside), and a
# SavedModel export (a dict output; no fit, no retraining: those lines say they skip it).
QUICK_CASES = ("multiclass_undertrained", "structured_healthy", "export_flat")
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
QUICK_FLEET_CASES = QUICK_CASES
# The mixed fleet (fleet_mixed): every zoo shape, healthy and faulty about 80/20 as a real
# fleet is. Every healthy scenario (13, each shape among them) and a faulty one of four shapes.
MIXED_FAULTY = ("regression_lr_too_high", "structured_lr_too_low",
                "seq_conv1d_unscaled_targets", "export_flat")
QUICK_FLEET_RETRAIN = ("multiclass_undertrained",)


@dataclass
class Plan:
    """Which zoo cases each part of the run uses."""

    cases: list[str]  # per-case comparisons and the probe table
    retrain: list[str]  # the retrain comparison (model.fit of every job is the slow part)
    fleet: list[str]
    fleet_retrain: set[str]
    mixed: list[str]  # the mixed fleet's cases


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
    mixed = list(QUICK_CASES) if args.quick else [
        *(n for n, s in SCENARIOS.items() if s.expected_fault is None), *MIXED_FAULTY]
    return Plan(cases, retrain, fleet, fleet_retrain, mixed)


def case_names(plan: Plan, wanted: set[str], table: bool) -> list[str]:
    """The zoo cases the per-case part of the run visits, in order."""
    per_case = wanted & {"perturbation", "perturbation_floor", *AUDIT_VS_FIT} or table
    names = [*(plan.cases if per_case else []), *(plan.retrain if "retrain" in wanted else [])]
    return list(dict.fromkeys(names))


def no_fit_line(case: Any) -> str:
    """Why a case has no audit-vs-fit line (it still gets its row in the probe table)."""
    if not case.retrainable:
        return "a SavedModel export cannot be fitted"
    return (f"no audit_vs_one_fit line for {case.shape!r} models (lines: "
            f"{', '.join(sorted(set(AUDIT_LINES.values())))})")


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
                elif wanted & AUDIT_VS_FIT:
                    log(f"  audit vs fit skipped: {no_fit_line(case)}")
                table.append(times)
                log(f"  audit {times['total']:.2f} s")
        except Mismatch as exc:
            failures.append(str(exc))
            log(f"  MISMATCH: {exc}")
    return rows, table


def worst_faulty(rows: list[dict[str, Any]], zoo: dict[str, Any]) -> Comparison:
    """`audit_vs_one_fit_worst`: the faulty case whose audit costs the most fits."""
    faulty = [r for r in rows if zoo[r["case"]].expected_fault and math.isfinite(r["ratio"])]
    if not faulty:
        return Comparison("audit_vs_one_fit_worst", math.nan, math.nan, math.nan,
                          notes={"skipped": "no faulty case had its fit timed"})
    worst = min(faulty, key=lambda r: r["ratio"])
    return Comparison("audit_vs_one_fit_worst", worst["ours_s"], worst["baseline_s"],
                      worst["ratio"], cases=sorted(faulty, key=lambda r: r["ratio"]),
                      notes={"case": worst["case"]})


def run(args: argparse.Namespace) -> int:
    """Measure, print the lines and the table, write the JSON; 1 if a check failed."""
    wanted = set(args.only.split(",")) if args.only else set(COMPARISONS)
    unknown = wanted - set(COMPARISONS) - {WORST}
    if unknown:
        raise SystemExit(f"error: unknown comparison(s) {sorted(unknown)}; valid: "
                         f"{[*COMPARISONS, WORST]}")
    if WORST in wanted:  # the worst faulty case of the three audit-vs-fit lines
        wanted = (wanted - {WORST}) | AUDIT_VS_FIT
    plan = choose(args)
    if args.table is None:
        args.table = bool(wanted & AUDIT_VS_FIT)
    fleet_on = bool(wanted & {"fleet_parallel", "fleet_overhead"})
    mixed_on = "fleet_mixed" in wanted
    longest_on = "fleet_longest_first" in wanted
    started, wall0 = time.time(), time.perf_counter()
    git_start = git_info()  # others may commit to this tree while the run lasts
    load_start = os.getloadavg()
    log(f"load average at start: {load_start[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    failures: list[str] = []
    settings = retrain_settings(args)
    with quiet_tensorflow(), tempfile.TemporaryDirectory(prefix="flatline-bench-") as tmp:
        folder = Path(tmp)
        needed = [*case_names(plan, wanted, args.table), *(plan.fleet if fleet_on else []),
                  *(plan.mixed if mixed_on else []),
                  *((*CHEAP_CASES, LONG_CASE) if longest_on else ())]
        zoo, zoo_s = zoo_cases(Path(args.zoo) if args.zoo else folder / "zoo",
                               list(dict.fromkeys(needed)))
        rows, table = measure_cases(plan, zoo, wanted, args, failures)
        results: list[Comparison | Throughput] = []
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
        if wanted & AUDIT_VS_FIT:
            results.append(worst_faulty([row for line in AUDIT_VS_FIT for row in rows[line]],
                                        zoo))
        if fleet_on:
            try:
                results += measure_fleet([zoo[n] for n in plan.fleet], plan.fleet_retrain,
                                         folder / "fleet", wanted)
            except Mismatch as exc:
                failures.append(str(exc))
                log(f"MISMATCH: {exc}")
        if mixed_on:
            try:
                results.append(measure_mixed([zoo[n] for n in plan.mixed], folder / "mixed"))
            except Mismatch as exc:
                failures.append(str(exc))
                log(f"MISMATCH: {exc}")
        for name, measure in (("nightly_validate", lambda: measure_nightly_validate(
                folder / "nightly")), ("fleet_longest_first", lambda: measure_longest_first(
                zoo, folder / "longest"))):
            if name in wanted:
                try:
                    results.append(measure())
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
                 "mixed": plan.mixed,
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
            Measure Flatline against the obvious code on the scenario zoo (audit/zoo/).

            Prints one line per comparison,
              NAME: RATIO x (ours OURS_S s vs baseline BASE_S s)
            where RATIO = baseline time / our time (bigger is better; for the comparisons
            measured per zoo case, the median over the cases and the median of each time),
            then a per-probe time table, and writes the figures per case, with the machine
            and the git commit, to benchmarks/results/latest.json. Each comparison first
            checks that both sides computed the same result; a failed check prints
            MISMATCH and the exit status is 1. A line that cannot apply to a case (an
            export cannot be fitted or retrained) says so and skips it. The full run takes
            about 11 minutes on 2 cores with the zoo built (building it, 2 more),
            --quick about 1.5."""),
        epilog=f"comparisons:\n{lines}\n\n" + textwrap.dedent("""\
            examples:
              python benchmarks/run.py --quick
              python benchmarks/run.py --only retrain --retrain-cases deep_vanishing
              python benchmarks/run.py --zoo /tmp/zoo   # build once, reuse next time
            More in benchmarks/README.md."""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", metavar="A,B", help="zoo cases for the per-case comparisons "
                   "(default: every scenario in audit/zoo/scenarios.py); the fleet uses them too "
                   "unless --fleet-cases is given")
    p.add_argument("--quick", action="store_true", help=f"a smaller run: {len(QUICK_CASES)} "
                   f"cases ({', '.join(QUICK_CASES)}), a fleet of {len(QUICK_FLEET_CASES)}, "
                   "1 retrain seed")
    p.add_argument("--only", metavar="NAME,NAME", help="run only these comparisons (names "
                   "below; default: all; audit_vs_one_fit_worst runs the three audit-vs-fit lines)")
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
                   "zoo.json lists (default: build into a temp folder, ~2 min for all 40)")
    p.add_argument("--json", default=str(RESULTS / "latest.json"), metavar="PATH",
                   help="where to write the figures (default: benchmarks/results/latest.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.quick and args.seeds is None:
        args.seeds = 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
