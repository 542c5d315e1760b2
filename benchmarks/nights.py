"""`nightly_validate` and `fleet_longest_first`: what a second night costs.

- `nightly_validate`: expanding a fleet of large files into cases (what `audit validate` and
  the start of `audit run` do) the first time, with an empty digest cache, against the second
  time, as a new process would (nothing remembered in memory, the cache on disk). Both must
  give the same ids. The files are backdated a day (a fleet trained yesterday), so the cache
  trusts them (files written within 2 s of their hash are hashed again).
- `fleet_longest_first`: a mixed fleet whose longest case is listed last, on 2 slots: the
  second night (the first night's durations known) started longest first, against the same
  night in manifest order. Both are `--fresh` (nothing reused) and must end with the same
  verdicts. Each side's time is the span from the first case's start to the last case's end
  (the actors' start, the same on both, left out); the JSON says how far the longest-first
  span is from the bound max(longest case, total work / slots).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from harness import Comparison, Mismatch, log, timed

#: the large-files fleet: this many cases, each a model and a dataset of FILE_MB
VALIDATE_CASES = 12
FILE_MB = 24
#: the mixed fleet: cheap cases listed first, the one long case (it retrains) last
LONG_CASE = "multiclass_undertrained"
CHEAP_CASES = ("binary_mlp_healthy", "linear_healthy", "multiclass_deep_healthy",
               "regression_lr_too_high", "linear_raw_inputs", "regression_dead_relu")
CHEAP_PROBES = ("data", "config", "sensitivity", "activations", "gradients")


def measure_nightly_validate(folder: Path) -> Comparison:
    from audit.io import digests
    from audit.manifest.schema import parse_manifest

    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    for i in range(VALIDATE_CASES):
        for kind, suffix in (("models", "keras"), ("data", "parquet")):
            path = folder / kind / f"m{i:02d}.{suffix}"
            path.parent.mkdir(exist_ok=True)
            with open(path, "wb") as out:
                out.write(f"{kind}{i}".encode())
                for _ in range(FILE_MB):
                    out.write(block)
    day_ago = time.time() - 86400
    for path in folder.rglob("*"):
        os.utime(path, (day_ago, day_ago))
    doc = {"name": "bench-nightly", "probes": ["data"],
           "fleet": [{"models": "models/*.keras", "data": "data/{stem}.parquet"}]}
    cache = folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    previous = os.environ.get("FLATLINE_CACHE_DIR")
    os.environ["FLATLINE_CACHE_DIR"] = str(cache)

    def expand() -> list[str]:
        digests._DIGESTS.clear()  # what a new process starts with
        for con in digests._CONNECTIONS.values():
            if con is not None:
                con.close()
        digests._CONNECTIONS.clear()
        manifest = parse_manifest(doc, where="benchmark", base_dir=str(folder))
        return [c.case_id for c in manifest.cases()]

    try:
        log(f"nightly_validate: {VALIDATE_CASES} cases, {2 * VALIDATE_CASES * FILE_MB} MB ...")
        first_s, first = timed(expand)
        second_s, second = timed(expand)
    finally:
        if previous is None:
            os.environ.pop("FLATLINE_CACHE_DIR", None)
        else:
            os.environ["FLATLINE_CACHE_DIR"] = previous
    if first != second:
        raise Mismatch("nightly_validate: the second expansion gave other ids")
    return Comparison("nightly_validate", second_s, first_s, first_s / second_s, [], {
        "cases": VALIDATE_CASES, "mb": 2 * VALIDATE_CASES * FILE_MB,
        "ids_identical": True, "timing": "one expansion each, in this process, the second "
        "as a new process sees it (nothing in memory, the cache on disk); the files were "
        "just written, so the first reads them from the page cache, not the disk"})


def measure_longest_first(zoo: dict[str, Any], folder: Path) -> Comparison:
    import ray

    from audit.fleet import FleetOptions, run_fleet
    from audit.manifest.schema import parse_manifest

    entries = []
    for name in (*CHEAP_CASES, LONG_CASE):
        entry: dict[str, Any] = zoo[name].spec_fields()
        entry["probes"] = [*CHEAP_PROBES, "retrain"] if name == LONG_CASE else list(
            CHEAP_PROBES)
        entries.append(entry)
    doc = {"name": "bench-longest", "output": str(folder / "out"),
           "resources": {"num_cpus": 1}, "cases": entries}
    manifest = parse_manifest(doc, where="benchmark", base_dir=str(folder))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    spans: dict[str, dict[str, Any]] = {}
    try:
        # night 1 (its durations are what the second night knows), then the second night
        # both ways, longest first, manifest order, longest first again: best of each
        order = [("night1", True), ("lpt_a", True), ("manifest_a", False), ("lpt_b", True),
                 ("manifest_b", False)]
        for label, lpt in order:
            log(f"fleet_longest_first: {len(entries)} cases, {label} ...")
            options = FleetOptions(run_id=label, fresh=True, longest_first=lpt,
                                   max_concurrency=2, progress=False, handle_signals=False)
            result = run_fleet(manifest, options)
            if result.n_ok != len(entries):
                raise Mismatch(f"fleet_longest_first {label}: {result.n_ok}/{len(entries)} ok")
            spans[label] = _span(str(folder / "out"), label)
    finally:
        ray.shutdown()
    verdicts = {k: v["verdicts"] for k, v in spans.items()}
    if len({tuple(sorted(v.items())) for v in verdicts.values()}) != 1:
        raise Mismatch(f"fleet_longest_first: verdicts differ between runs: {verdicts}")
    lpt = min(("lpt_a", "lpt_b"), key=lambda k: spans[k]["span_s"])
    manifest_order = min(("manifest_a", "manifest_b"), key=lambda k: spans[k]["span_s"])
    ours, base = spans[lpt]["span_s"], spans[manifest_order]["span_s"]
    bound = max(spans[lpt]["longest_s"], spans[lpt]["work_s"] / 2)
    return Comparison("fleet_longest_first", ours, base, base / ours, [], {
        "runs": spans, "bound_s": bound, "ours_over_bound": ours / bound,
        "within_10pct_of_bound": ours <= 1.1 * bound, "slots": 2,
        "long_case": LONG_CASE, "timing": "span from the first case's start to the last "
        "case's end; best of two runs each, interleaved"})


def _span(output: str, run_id: str) -> dict[str, Any]:
    from audit.reports import query

    _, rows = query(output, "select name, started_at, finished_at, duration_s, verdict, "
                    f"worker from cases where run_id = '{run_id}' order by started_at")
    start = min(r[1] for r in rows).timestamp()
    end = max(r[2] for r in rows).timestamp()
    return {"span_s": end - start, "work_s": sum(r[3] for r in rows),
            "longest_s": max(r[3] for r in rows), "started": [r[0] for r in rows],
            "verdicts": {r[0]: r[4] for r in rows}}
