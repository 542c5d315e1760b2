"""Stability and calibration of the diagnosis on the whole zoo: every scenario audited under
three seeds (the suite covers the plain-MLP ones, tests/test_zoo_stability.py; this covers the
conv, recurrent, two-head and export scenarios too), and the confidence calibration table of
the first seed (the table in benchmarks/README.md).

    python benchmarks/stability.py [--seeds 0 1 2] [--names a b ...] [--keep DIR] [--workers 2]

Prints one line per scenario (expected fault, primary fault per seed, stable or not), the
number right and stable, the calibration table, and the wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.zoo import audit_zoo_seeds, build_zoo, calibration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--names", nargs="+", default=None, help="scenarios (default: all)")
    parser.add_argument("--keep", type=Path, default=None, help="build the zoo here")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    args = parser.parse_args()
    started = time.monotonic()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="zoo-stability-"))
    cases = build_zoo(folder, args.names, workers=args.workers)
    by_seed = audit_zoo_seeds(cases, tuple(args.seeds), workers=args.workers)
    right = stable = 0
    findings: dict[str, list[tuple[str, float]]] = {}
    for case in cases:
        primaries = [by_seed[seed][case.name].primary_fault for seed in args.seeds]
        primaries = [None if p is None else str(p) for p in primaries]  # codes as plain text
        first = by_seed[args.seeds[0]][case.name]
        findings[case.name] = [(f.fault, f.confidence) for f in first.findings]
        ok = all(p == case.expected_fault for p in primaries)
        right += primaries[0] == case.expected_fault
        stable += len(set(primaries)) == 1
        print(f"{'ok ' if ok else 'BAD'} {case.name:38s} expected={case.expected_fault} "
              f"got={primaries}", flush=True)
    print(f"right (seed {args.seeds[0]}): {right}/{len(cases)}; "
          f"stable over {len(args.seeds)} seeds: {stable}/{len(cases)}")
    print("| confidence | findings | right | accuracy |\n|---|---|---|---|")
    for row in calibration(findings):
        print(f"| {row['bin']} | {row['findings']} | {row['right']} | {row['accuracy']:.2f} |")
    print(f"wall: {time.monotonic() - started:.0f} s")
    return 0 if right == stable == len(cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
