"""`racing_time_saved`: what racing saves in time on the models that race, on the faulty zoo.

    python benchmarks/racing.py [--names a b ...] [--zoo DIR] [--all-racing]

Racing (one seed of every plan first, more seeds only for the plans still in the running)
applies to the models whose plans cannot be stacked into one graph, or are big
(`retrain.races`: conv, recurrent, structured and multi-output models, Dense stacks of
`race_stacked_min_params` or more). On every faulty, retrainable zoo scenario whose model
races, the retrain probe runs twice on the same subject: the full grid (`race=False`: every
plan x every seed) and racing as shipped. Racing is checked to reach the full grid's diagnosis
(the same primary fault from the retrain evidence alone); a mismatch is printed and the
command exits 1. Prints, in benchmarks/run.py's line form (RATIO = full grid / racing, the
median over the racing models; the probe's wall time):

    racing_time_saved: RATIO x (ours S s vs baseline S s)

and each racing model's trainings and seconds on stderr. The count of trainings saved is not a
line: the confirmation rule (2 winning seeds and the baseline's second) bounds it near 2x.
`--all-racing` also forces racing on every faulty model, the plain Dense stacks too (they train
every seed stacked in one graph as shipped), and prints `racing_time_all_racing` over all of
them: the experiment that showed racing costs those models time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = {"full": {"race": False}, "shipped": {}, "all": {"race_stacked_min_params": 0}}


def measure(subject: Any, modes: list[str]) -> dict[str, Any]:
    """The runs of one subject: trainings, epochs, seconds and the diagnosis of each mode."""
    from audit.diagnose import diagnose
    from audit.probes.retrain import RetrainSettings, run

    row: dict[str, Any] = {"case": subject.name}
    for mode in modes:
        started = time.perf_counter()
        result = run(subject, RetrainSettings(**MODES[mode]))
        row[mode] = {"s": time.perf_counter() - started,
                     "trainings": result.metrics["trainings"],
                     "grid": result.metrics["trainings_full_grid"],
                     "fault": diagnose({"retrain": result}, subject.task).primary_fault}
    return row


def line(name: str, ours: list[float], theirs: list[float], unit: str) -> str:
    if not ours:
        return f"{name}: skipped (no faulty retrainable model of the run races)"
    ratios = [t / o for o, t in zip(ours, theirs, strict=True) if o > 0]
    return (f"{name}: {statistics.median(ratios):.2f} x (ours {statistics.median(ours):.3g} "
            f"{unit} vs baseline {statistics.median(theirs):.3g} {unit})")


def main() -> int:
    from harness import case_spec, log, zoo_cases

    from audit.probes.retrain import RetrainSettings, races
    from audit.subject import load_subject
    from audit.zoo import SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=None, help="scenarios (default: the "
                        "faulty ones)")
    parser.add_argument("--zoo", type=Path, default=None, help="build the zoo here, or reuse "
                        "the cases its zoo.json lists")
    parser.add_argument("--all-racing", action="store_true", help="also force racing on "
                        "every faulty model, plain Dense stacks too (about 3x longer)")
    args = parser.parse_args()
    names = args.names or [n for n, s in SCENARIOS.items()
                           if s.expected_fault is not None and s.shape != "export"]
    folder = args.zoo or Path(tempfile.mkdtemp(prefix="zoo-racing-"))
    zoo, _ = zoo_cases(folder, names)
    racing: list[dict[str, Any]] = []
    forced: list[dict[str, Any]] = []
    mismatches: list[str] = []  # racing as shipped changed the diagnosis: a failure
    notes: list[str] = []  # racing forced on every model did: reported, the experiment's cost
    for case in zoo.values():
        if not case.retrainable:
            continue
        subject = load_subject(case_spec(case))
        if races(subject, RetrainSettings()):
            row = measure(subject, ["full", "shipped", *(["all"] if args.all_racing else [])])
            racing.append(row)
            if row["shipped"]["fault"] != row["full"]["fault"]:
                mismatches.append(f"{case.name}: full grid {row['full']['fault']}, racing "
                                  f"{row['shipped']['fault']}")
            log(f"  {case.name:36s} races: trainings {row['full']['trainings']:.0f} -> "
                f"{row['shipped']['trainings']:.0f}, {row['full']['s']:.1f} -> "
                f"{row['shipped']['s']:.1f} s  {row['full']['fault']}")
        elif args.all_racing:
            row = measure(subject, ["full", "all"])
            log(f"  {case.name:36s} stacked: forced racing {row['full']['s']:.1f} -> "
                f"{row['all']['s']:.1f} s")
        else:
            log(f"  {case.name:36s} does not race (its plans train stacked)")
            continue
        if args.all_racing:
            forced.append(row)
            if row["all"]["fault"] != row["full"]["fault"]:
                notes.append(f"{case.name}: full grid {row['full']['fault']}, forced racing "
                             f"{row['all']['fault']}")

    def of(rows: list[dict[str, Any]], mode: str) -> list[float]:
        return [row[mode]["s"] for row in rows]

    print(line("racing_time_saved", of(racing, "shipped"), of(racing, "full"), "s"))
    if args.all_racing:
        print(line("racing_time_all_racing", of(forced, "all"), of(forced, "full"), "s"))
    for note in notes:
        print(f"note: forced racing changed the retrain-only diagnosis: {note}")
    for mismatch in mismatches:
        print(f"MISMATCH: racing changed the diagnosis: {mismatch}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
