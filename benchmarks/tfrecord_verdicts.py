"""The whole zoo audited twice, from its Parquet/`.npz` files and from the same rows as gzipped
TFRecord shards: how many cases get the same verdict and primary fault.

    python benchmarks/tfrecord_verdicts.py [--zoo DIR] [--shards 4] [--workers 2] [CASE ...]

Prints `tfrecord_verdicts: N of M agree (verdict and primary fault)` and one line per case that
does not, then a JSON line. The zoo is built into `--zoo` (default a temp folder) unless its
`zoo.json` (as `benchmarks/harness.py` writes it) already lists the cases; each case is audited
as built (all probes, the default budget, seed 0) in `--workers` processes, both formats in
the same pool. Exit code 1 when a case disagrees.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import log


def _zoo(folder: Path, names: list[str], workers: int) -> dict[str, Any]:
    from audit.zoo import SCENARIOS, ZooCase, build_zoo

    index = folder / "zoo.json"
    known = ({d["name"]: ZooCase(**d) for d in json.loads(index.read_text())}
             if index.exists() else {})
    names = names or list(SCENARIOS)
    missing = [n for n in names if n not in known]
    if missing:
        started = time.perf_counter()
        log(f"building {len(missing)} zoo cases in {folder} ...")
        known.update({c.name: c for c in build_zoo(folder, missing, workers=workers)})
        index.write_text(json.dumps([asdict(c) for c in known.values()], default=str))
        log(f"zoo built in {time.perf_counter() - started:.0f} s")
    return {n: known[n] for n in names}


def _audit(spec: Any) -> tuple[str | None, str | None, str | None]:
    from audit.engine import audit_case  # in the child process

    report = audit_case(spec)
    return report.verdict, report.primary_fault, report.error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help="zoo case names (default: all)")
    parser.add_argument("--zoo", help="build (or reuse) the zoo here")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from audit.manifest.case import CaseSpec
    from audit.zoo import map_in_processes
    from audit.zoo.tfrecords import as_tfrecords

    with tempfile.TemporaryDirectory(prefix="flatline-tfr-zoo-") as tmp:
        folder = Path(args.zoo or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        cases = _zoo(folder, args.cases, args.workers)
        specs, started = [], time.perf_counter()
        for name, case in cases.items():
            spec = CaseSpec(**case.spec_fields())
            shards = as_tfrecords(case.data_path, folder / "tfrecord" / name, args.shards)
            specs += [(spec,), (spec.model_copy(update={"data": shards}),)]
        log(f"wrote {len(cases)} datasets as TFRecord shards in "
            f"{time.perf_counter() - started:.0f} s; auditing both formats ...")
        started = time.perf_counter()
        results = map_in_processes(_audit, specs, args.workers)
        log(f"audited {len(specs)} cases in {time.perf_counter() - started:.0f} s")
    rows, differ = [], []
    for i, name in enumerate(cases):
        parquet, tfrecord = results[2 * i], results[2 * i + 1]
        rows.append({"case": name, "parquet": parquet, "tfrecord": tfrecord})
        if parquet[:2] != tfrecord[:2] or tfrecord[2] is not None:
            differ.append(f"  {name}: parquet {parquet}, tfrecord {tfrecord}")
    agree = len(cases) - len(differ)
    print(f"tfrecord_verdicts: {agree} of {len(cases)} agree (verdict and primary fault)")
    if differ:
        print("\n".join(differ))
    print(json.dumps({"agree": agree, "cases": len(cases), "shards": args.shards,
                      "rows": rows}))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
