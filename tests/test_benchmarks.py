"""The benchmark harness runs, prints its lines in the documented form and checks that both
sides of each comparison computed the same result (one small zoo case, tiny settings)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(\w+): (\d+\.\d\d|nan) x \(ours (\S+) s vs baseline (\S+) s\)$")
PER_CASE = ["perturbation", "perturbation_floor", "retrain", "audit_vs_one_fit"]


def test_harness_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--cases",
         "multiclass_undertrained", "--only", ",".join(PER_CASE), "--seeds", "1", "--epochs",
         "2", "--repeats", "1", "--zoo", str(tmp_path / "zoo"), "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    matches = [LINE.match(line) for line in lines[: len(PER_CASE)]]
    assert all(matches), lines
    assert [m.group(1) for m in matches] == PER_CASE
    for m in matches:
        ratio, ours, base = (float(m.group(i)) for i in (2, 3, 4))
        assert ours > 0 and base > 0 and ratio > 0
    assert any(line.startswith("case ") and "retrain" in line for line in lines), lines
    assert any(line.startswith("multiclass_undertrained ") for line in lines), lines

    doc = json.loads(out.read_text())
    assert doc["failures"] == [] and doc["git"]["commit"]
    comparisons = doc["comparisons"]
    assert set(comparisons) == set(PER_CASE)
    for name, line in zip(PER_CASE, lines, strict=False):
        assert comparisons[name]["line"] == line
    (pert,) = comparisons["perturbation"]["cases"]
    assert pert["outputs_match"] is True and pert["slices"] >= 5
    (job_set,) = comparisons["retrain"]["cases"]
    assert job_set["initial_weights_match"] is True and job_set["losses_match"] is True
    assert job_set["losses_compared"] == job_set["jobs"] > 0
    assert comparisons["audit_vs_one_fit"]["cases"][0]["verdict"] in ("flat", "impaired",
                                                                     "healthy")
    assert doc["probe_times"][0]["case"] == "multiclass_undertrained"
