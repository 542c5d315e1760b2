"""`audit demo`: build the scenario zoo, write a manifest for it, run it on an embedded Ray.

Building the zoo trains small Keras models, so it runs in a child process
(`python -m audit.demo build FOLDER`): the CLI process never imports TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from audit.fleet import FleetError, FleetOptions, RunResult, run_fleet
from audit.spec import ALL_PROBES, load_manifest

MANIFEST_NAME = "demo.yaml"


def write_demo_manifest(folder: Path, names: list[str] | None = None,
                        probes: tuple[str, ...] = ALL_PROBES) -> Path:
    """Build the zoo into `folder` (in a child process) and write a manifest listing it."""
    command = [sys.executable, "-m", "audit.demo", "build", str(folder), *(names or [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FleetError(f"building the demo zoo failed: {last}")
    cases = json.loads((folder / "zoo.json").read_text())
    manifest = {
        "name": "demo",
        "output": "reports",
        "resources": {"num_cpus": 1},
        "probes": list(probes),
        "cases": [_case_entry(case, folder) for case in cases],
    }
    path = folder / MANIFEST_NAME
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _case_entry(case: dict[str, object], folder: Path) -> dict[str, object]:
    entry = {
        "name": case["name"],
        "model": str(Path(str(case["model_path"])).relative_to(folder)),
        "data": str(Path(str(case["data_path"])).relative_to(folder)),
        "label": case["label"],
        "task": case["task"],
    }
    if case.get("training"):
        entry["training"] = case["training"]
    if case.get("output"):
        entry["output"] = case["output"]
    return entry


def run_demo(folder: Path, names: list[str] | None = None,
             probes: tuple[str, ...] = ALL_PROBES,
             options: FleetOptions | None = None) -> RunResult:
    """Build the zoo into `folder`, then audit it; the report lands in `folder/reports`."""
    path = write_demo_manifest(folder, names, probes)
    return run_fleet(load_manifest(path), options or FleetOptions())


def _build(folder: Path, names: list[str]) -> None:
    """Child process: build the zoo and describe its cases in `zoo.json`."""
    import dataclasses
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from audit.zoo import build_zoo

    folder.mkdir(parents=True, exist_ok=True)
    cases = build_zoo(folder, names or None)
    (folder / "zoo.json").write_text(json.dumps([dataclasses.asdict(c) for c in cases],
                                                default=str))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m audit.demo build FOLDER [SCENARIO...]")
    _build(Path(sys.argv[2]), sys.argv[3:])
