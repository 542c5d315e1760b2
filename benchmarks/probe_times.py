"""Per-probe time for every zoo case: where an audit's seconds go.

Run: python benchmarks/probe_times.py [SCENARIO ...]
Prints a table (seconds per probe per case, load, and the case total) and the median case total.
The measuring lives in benchmarks/run.py (which prints the same table after its comparisons);
this is the table alone.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from audit_fit import audit_rows, probe_table
from harness import quiet_tensorflow


def main(names: list[str]) -> None:
    from audit.zoo import build_zoo

    with quiet_tensorflow(), tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        cases = build_zoo(Path(folder), names or None)
        print(f"zoo built in {time.perf_counter() - started:.1f} s ({len(cases)} cases)")
        print(probe_table(audit_rows(cases)))


if __name__ == "__main__":
    main(sys.argv[1:])
