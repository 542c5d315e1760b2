"""`trainings_saved`: what racing spares against the full plan x seed grid, on the faulty zoo.

    python benchmarks/racing.py [--names a b ...] [--keep DIR]

For every faulty, retrainable zoo scenario the retrain probe runs three times on the same
subject: the full grid (`race=False`: every plan x every seed), racing as shipped (plain Dense
stacks under `race_stacked_min_params` train the full grid, stacked), and racing forced on
every model. Racing as shipped is checked to reach the full grid's diagnosis (the same primary
fault from the retrain evidence alone); a mismatch is printed and the command exits 1. Where
forced racing changes it (fewer seeds reorder close confirmed changes), a note says so.

Prints, in benchmarks/run.py's line form (RATIO = full grid / racing, medians over the cases):

    trainings_saved: RATIO x (ours N trainings vs baseline M trainings)
    trainings_saved_epochs: RATIO x (ours N epochs vs baseline M epochs)
    trainings_saved_all_racing: ...             (racing forced on every model)
    racing_time_all_racing: RATIO x (ours S s vs baseline S s)   (probe wall time)
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

MODES = {"full": {"race": False}, "shipped": {}, "all": {"race_stacked_min_params": 0}}


def measure(subject: Any) -> dict[str, Any]:
    """The three runs of one subject: trainings, epochs, seconds and the diagnosis of each."""
    from audit.diagnose import diagnose
    from audit.probes.retrain import RetrainSettings, run

    row: dict[str, Any] = {"case": subject.name}
    for mode, values in MODES.items():
        started = time.perf_counter()
        result = run(subject, RetrainSettings(**values))
        row[mode] = {"s": time.perf_counter() - started,
                     "trainings": result.metrics["trainings"],
                     "grid": result.metrics["trainings_full_grid"],
                     "epochs": result.metrics["epochs_trained"],
                     "grid_epochs": result.metrics["epochs_full_grid"],
                     "fault": diagnose({"retrain": result}, subject.task).primary_fault}
    return row


def line(name: str, ours: list[float], theirs: list[float], unit: str) -> str:
    ratios = [t / o for o, t in zip(ours, theirs, strict=True) if o > 0]
    return (f"{name}: {statistics.median(ratios):.2f} x (ours {statistics.median(ours):.3g} "
            f"{unit} vs baseline {statistics.median(theirs):.3g} {unit})")


def main() -> int:
    from audit.spec import CaseSpec
    from audit.subject import load_subject
    from audit.zoo import SCENARIOS, build_zoo

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=None, help="scenarios (default: faulty)")
    parser.add_argument("--keep", type=Path, default=None, help="build the zoo here")
    args = parser.parse_args()
    names = args.names or [n for n, s in SCENARIOS.items() if s.expected_fault is not None]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="zoo-racing-"))
    rows: list[dict[str, Any]] = []
    mismatches: list[str] = []  # racing as shipped changed the diagnosis: a failure
    forced: list[str] = []  # racing forced on every model did: reported, the experiment's cost
    for case in build_zoo(folder, names):
        if not case.retrainable:
            continue
        row = measure(load_subject(CaseSpec(**case.spec_fields())))
        rows.append(row)
        faults = {mode: row[mode]["fault"] for mode in MODES}
        if faults["shipped"] != faults["full"]:
            mismatches.append(f"{case.name}: {faults}")
        elif faults["all"] != faults["full"]:
            forced.append(f"{case.name}: {faults}")
        print(f"  {case.name:36s} trainings full/shipped/all = {row['full']['trainings']:.0f}/"
              f"{row['shipped']['trainings']:.0f}/{row['all']['trainings']:.0f}  seconds "
              f"{row['full']['s']:.1f}/{row['shipped']['s']:.1f}/{row['all']['s']:.1f}  "
              f"{faults['full']}", file=sys.stderr, flush=True)

    def of(mode: str, key: str) -> list[float]:
        return [row[mode][key] for row in rows]

    print(line("trainings_saved", of("shipped", "trainings"), of("full", "trainings"),
               "trainings"))
    print(line("trainings_saved_epochs", of("shipped", "epochs"), of("full", "epochs"),
               "epochs"))
    print(line("trainings_saved_all_racing", of("all", "trainings"), of("full", "trainings"),
               "trainings"))
    print(line("trainings_saved_all_racing_epochs", of("all", "epochs"), of("full", "epochs"),
               "epochs"))
    print(line("racing_time_shipped", of("shipped", "s"), of("full", "s"), "s"))
    print(line("racing_time_all_racing", of("all", "s"), of("full", "s"), "s"))
    for note in forced:
        print(f"note: forced racing changed the retrain-only diagnosis: {note}")
    for mismatch in mismatches:
        print(f"MISMATCH: racing changed the diagnosis: {mismatch}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
