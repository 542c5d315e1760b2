"""`audit demo`: build the scenario zoo, write a manifest for it, run it on an embedded Ray.

Building the zoo trains small Keras models, so it runs in a child process
(`python -m audit.cli.demo build FOLDER`): the CLI process never imports TensorFlow. The child
prints `built NAME` as each scenario is saved, so the CLI can show progress while it builds.
By default the demo takes `DEMO_SCENARIOS`, a handful that shows every verdict in under a
minute; the whole zoo (40 scenarios) takes a few minutes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from audit.fleet import FleetError, FleetOptions, RunResult, run_fleet
from audit.fleet.session import ray_session
from audit.manifest.case import ALL_PROBES
from audit.manifest.schema import load_manifest
from audit.zoo import SCENARIOS, build_zoo

MANIFEST_NAME = "demo.yaml"
#: the demo's default: each verdict once or twice, cheap to build and audit (healthy: two
#: healthy models; flat: a diverged learning rate and a SavedModel export whose output
#: collapsed; impaired: a learning rate too low and a loss that does not fit the head)
DEMO_SCENARIOS = ("linear_healthy", "binary_mlp_healthy", "regression_lr_too_high",
                  "export_flat", "linear_lr_too_low", "multiclass_loss_mismatch")
BUILT = "built "  # the child's line per scenario saved


def write_demo_manifest(folder: Path, names: list[str] | None = None,
                        probes: tuple[str, ...] = ALL_PROBES,
                        on_built: Callable[[str], None] | None = None) -> Path:
    """Build the zoo into `folder` (in a child process; `on_built(name)` as each scenario is
    saved) and write a manifest listing it. `names=None` builds the whole zoo."""
    return _finish_build(_start_build(folder, names), folder, probes, on_built)


def _start_build(folder: Path, names: list[str] | None) -> subprocess.Popen[str]:
    """The child that builds the zoo; its stderr (TensorFlow's chatter) goes to a file, so a
    full pipe can never stall it."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "audit.cli.demo", "build", str(folder), *(names or [])]
    with (folder / "build.log").open("w") as log:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)


def _finish_build(child: subprocess.Popen[str], folder: Path, probes: tuple[str, ...],
                  on_built: Callable[[str], None] | None) -> Path:
    """Follow the child to its end, then write the manifest of what it built."""
    assert child.stdout is not None
    with child:
        for line in child.stdout:
            if line.startswith(BUILT) and on_built is not None:
                on_built(line[len(BUILT):].strip())
    if child.returncode != 0:
        errors = (folder / "build.log").read_text(errors="replace")
        last = (errors.strip().splitlines() or ["no output"])[-1]
        raise FleetError(f"building the demo zoo failed: {last} (log: {folder / 'build.log'})")
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
             options: FleetOptions | None = None,
             on_built: Callable[[str], None] | None = None) -> RunResult:
    """Build the named scenarios (None: the whole zoo) into `folder`, then audit them; the
    report lands in `folder/reports`. Ray starts while the zoo builds."""
    options = options or FleetOptions()
    child = _start_build(folder, names)
    try:
        with ray_session(options):
            path = _finish_build(child, folder, probes, on_built)
            return run_fleet(load_manifest(path), options)
    finally:
        if child.poll() is None:  # Ray could not start: the build is of no use
            child.kill()
            child.wait()


def _build(folder: Path, names: list[str]) -> None:
    """Child process: build the zoo and describe its cases in `zoo.json`."""

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for name in names or list(SCENARIOS):
        cases += build_zoo(folder, [name])
        print(f"{BUILT}{name}", flush=True)
    (folder / "zoo.json").write_text(json.dumps([dataclasses.asdict(c) for c in cases],
                                                default=str))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m audit.cli.demo build FOLDER [SCENARIO...]")
    _build(Path(sys.argv[2]), sys.argv[3:])
