"""Per-probe time for every zoo case: where an audit's seconds go.

Run: python benchmarks/probe_times.py [SCENARIO ...]
Prints a table (seconds per probe per case, and the case total) and the median case total.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(names: list[str]) -> None:
    from audit import probes
    from audit.engine import probe_settings
    from audit.spec import CaseSpec, Training
    from audit.subject import load_subject
    from audit.zoo import build_zoo

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        cases = build_zoo(Path(folder), names or None)
        print(f"zoo built in {time.perf_counter() - started:.1f} s ({len(cases)} cases)")
        header = ["case", "load", *probes.PROBES, "total"]
        print(" ".join(f"{h:>12}" if i else f"{h:<30}" for i, h in enumerate(header)))
        totals = []
        for case in cases:
            spec = CaseSpec(name=case.name, model=case.model_path, data=case.data_path,
                            label=case.label, training=Training(**case.training))
            t0 = time.perf_counter()
            subject = load_subject(spec)
            row = [time.perf_counter() - t0]
            for name, probe in probes.PROBES.items():
                row.append(probes.run_probe(probe, subject, probe_settings(name, spec)).duration_s)
            totals.append(sum(row))
            cells = " ".join(f"{v:>12.2f}" for v in [*row, totals[-1]])
            print(f"{case.name:<30} {cells}", flush=True)
        print(f"median case total: {statistics.median(totals):.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
