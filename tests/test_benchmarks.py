"""The benchmark harness runs on every kind of zoo case (a plain MLP, a model with several
named inputs, a SavedModel export with a dict output), prints its lines in the documented
form, says which lines skip which case, and checks that both sides of each comparison computed
the same result; its loss comparison tolerates float drift and two diverged runs, not a wrong
computation."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
LINE = re.compile(r"^(\w+): (\d+\.\d\d|nan) x \(ours (\S+) s vs baseline (\S+) s\)$")
PER_CASE = ["perturbation", "perturbation_floor", "retrain", "audit_vs_one_fit",
            "audit_vs_one_fit_conv"]


def test_quick_run_covers_every_kind_of_case(tmp_path: Path) -> None:
    # only the per-case lines: no fleet line, so no Ray (the test runs beside the others)
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only",
         ",".join(PER_CASE), "--epochs", "2", "--zoo", str(tmp_path / "zoo"), "--json",
         str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    measured = [LINE.match(line) for line in lines[:4]]
    assert all(measured), lines
    assert [m.group(1) for m in measured] == PER_CASE[:4]
    for m in measured:
        ratio, ours, base = (float(m.group(i)) for i in (2, 3, 4))
        assert ours > 0 and base > 0 and ratio > 0
    # no conv case in --quick: the line says it skipped, in words, instead of printing nan
    assert lines[4].startswith("audit_vs_one_fit_conv: skipped (") and "nan" not in lines[4]
    for name in ("multiclass_undertrained", "structured_healthy", "export_flat"):
        assert any(line.startswith(f"{name} ") for line in lines), lines
    assert "audit vs fit skipped: a SavedModel export cannot be fitted" in done.stderr

    doc = json.loads(out.read_text())
    assert doc["failures"] == [] and doc["git"]["commit"]
    comparisons = doc["comparisons"]
    for name, line in zip(PER_CASE, lines, strict=False):
        assert comparisons[name]["line"] == line
    pert = {row["case"]: row for row in comparisons["perturbation"]["cases"]}
    assert set(pert) == {"multiclass_undertrained", "structured_healthy", "export_flat"}
    assert all(row["outputs_match"] and row["slices"] >= 5 for row in pert.values())
    retrain = {row["case"]: row for row in comparisons["retrain"]["cases"]}
    assert "SavedModel" in retrain["export_flat"]["skipped"]
    assert "does well" in retrain["structured_healthy"]["skipped"]
    jobs = retrain["multiclass_undertrained"]
    assert jobs["initial_weights_match"] is True and jobs["losses_match"] is True
    assert jobs["losses_compared"] == jobs["jobs"] > 0
    (fit,) = comparisons["audit_vs_one_fit"]["cases"]
    assert fit["case"] == "multiclass_undertrained" and fit["verdict"] in ("flat", "impaired")


def test_loss_comparison_tolerates_drift_and_divergence_only() -> None:
    from harness import Mismatch
    from retraining import compare_losses

    def check(ours: list[float], fit: list[float]) -> dict:
        return compare_losses(["job"], [SimpleNamespace(losses=ours)], [fit], "case")

    # another CPU's float order: 0.35% apart after many steps (issue 20)
    assert check([1.2, 0.350713], [1.2, 0.349473])["losses_compared"] == 1
    # both diverged, whatever the size of the overflow or NaN against inf
    assert check([3.0, 4.47386e25], [3.0, 4.51116e25])["both_diverged"] == 1
    assert check([3.0, float("nan")], [3.0, float("inf")])["both_diverged"] == 1
    with pytest.raises(Mismatch, match=r"ours 0\.4 vs fit 0\.35"):  # a wrong computation
        check([1.2, 0.4], [1.2, 0.35])
    with pytest.raises(Mismatch, match="final losses differ"):  # one side diverged only
        check([1.2, 5e25], [1.2, 0.35])


def test_gpu_check_says_in_one_line_that_there_is_no_gpu() -> None:
    import shutil

    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver: run benchmarks/gpu_check.py itself")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "gpu_check: no GPU to check on this machine: no NVIDIA driver (nvidia-smi not found)"]
    assert "Traceback" not in done.stderr


def test_the_audit_parts_stopwatch_wraps_functions_that_exist() -> None:
    """`probe_times.py --parts / --steps-share` time an audit by wrapping the functions that
    do each part; a rename in the retrain probe must fail here, not in the benchmark."""
    import importlib

    from audit_parts import WRAPPED

    from audit.probes.retrain import graph_backend, stacked_backend

    missing = [f"{module}.{name}" for module, name, _ in WRAPPED
               if not callable(getattr(importlib.import_module(module), name, None))]
    assert not missing, missing
    assert callable(graph_backend._Graph.train) and callable(stacked_backend.StackedBackend.train)
