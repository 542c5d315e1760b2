"""The GPU paths, checked on hardware: four actors share one GPU, each capped to its memory.

    python benchmarks/gpu_check.py [--actors 4] [--keep DIR]

On a machine with a GPU: starts a local Ray, builds two zoo cases (a CNN, `cnn_lr_too_high`,
and an LSTM on tokens, `text_lstm_lr_too_low`) in a child process that cannot see the GPU,
then starts `--actors` fleet workers (`CaseWorker`, as `audit run` starts them) at
`num_gpus: 1/actors` each. Each worker caps its TensorFlow to its share of the GPU's memory
(`configure_tensorflow`), audits both cases through its own `run` (the report written as in a
fleet), and times one plain `model.fit` of each on the GPU. Prints, per actor:

    actor 0: gpu_ids ['0'] limit 3891 MiB peak 412 MiB (cnn_lr_too_high 178 MiB, ...)
      cnn_lr_too_high: audit 3.1 s vs fit 1.2 s (fit / audit 0.39), weights on /GPU:0

and exits 1 if any case ran out of memory (or its worker died), ran on the CPU by mistake (no
`gpu_ids` in the report, no GPU memory used, or its weights placed on the CPU), or did not end
`ok`. On a machine without a GPU it prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local Ray stays on loopback

CASES = ("cnn_lr_too_high", "text_lstm_lr_too_low")  # a conv and a sequence case
OOM_MARKERS = ("ResourceExhausted", "OOM", "out of memory", "worker process died")


def gpu_count() -> tuple[int, str]:
    """How many GPUs TensorFlow would see here, and why none when none: `nvidia-smi` first
    (cheap: no TensorFlow import on a machine without a driver), then TensorFlow itself."""
    if shutil.which("nvidia-smi") is None:
        return 0, "no NVIDIA driver (nvidia-smi not found)"
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return 0, "nvidia-smi lists no GPU"
    seen = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; "
         "print(len(tf.config.list_physical_devices('GPU')))"],
        capture_output=True, text=True, check=False)
    count = int(seen.stdout.strip().splitlines()[-1]) if seen.returncode == 0 else 0
    if count == 0:
        return -1, ("nvidia-smi lists a GPU but TensorFlow sees none (install "
                    "`tensorflow[and-cuda]`, check CUDA_VISIBLE_DEVICES)")
    return count, ""


def build_cases(folder: Path) -> list[Any]:
    """The two zoo cases, built in a child process that cannot see the GPU (so none of its
    memory is taken before the actors start)."""
    import json

    from audit.manifest.case import CaseSpec, case_id
    from audit.zoo import ZooCase

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-m", "audit.cli.demo", "build", str(folder), *CASES],
                   env=env, check=True, capture_output=True)
    cases = [ZooCase(**d) for d in json.loads((folder / "zoo.json").read_text())]
    specs = [CaseSpec(**c.spec_fields()) for c in cases]
    return [s.model_copy(update={"case_id": case_id(s)}) for s in specs]


def for_actor(specs: list[Any], actor: int) -> list[Any]:
    """The cases as actor `actor` audits them: its own names and ids, so that each actor's
    reports stand apart in the report folder."""
    return [s.model_copy(update={"name": f"{s.name}-actor{actor}",
                                 "case_id": f"{s.case_id}-actor{actor}"}) for s in specs]


def worker_class() -> Any:
    """`CaseWorker` with a method that audits the cases, times a fit of each and reads the
    GPU's memory; defined here so that Ray ships it with the script."""
    from audit.fleet.worker import CaseWorker

    class GpuCheckWorker(CaseWorker):
        def check(self, specs: list[Any]) -> dict[str, Any]:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            configs = tf.config.get_logical_device_configuration(gpus[0]) if gpus else None
            limit = configs[0].memory_limit if configs else None
            out: dict[str, Any] = {"pid": os.getpid(), "gpu_ids": self.identity["gpu_ids"],
                                   "visible_gpus": len(gpus), "limit_mb": limit, "cases": {}}
            for spec in specs:
                row: dict[str, Any] = {}
                if gpus:
                    tf.config.experimental.reset_memory_stats("GPU:0")
                started = time.perf_counter()
                status = self.run(spec, 1)
                row["audit_s"] = time.perf_counter() - started
                row["status"] = status
                row["fit_s"], row["device"] = self._fit(spec)
                if gpus:
                    row["peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
                out["cases"][spec.name] = row
            return out

        @staticmethod
        def _fit(spec: Any) -> tuple[float, str]:
            """One plain fit of a fresh clone under the model's own training config, timed;
            and the device its first weight was placed on."""
            import keras

            from audit.probes.tfutil import (
                encode_targets,
                make_loss,
                make_optimizer,
                subject_head,
                to_tensors,
            )
            from audit.subject import load_subject

            subject = load_subject(spec)
            t = subject.training
            model = keras.models.clone_model(subject.model)
            y = encode_targets(subject.y, subject.task, t.loss, subject_head(subject).units)
            started = time.perf_counter()
            model.compile(optimizer=make_optimizer(t.optimizer, t.learning_rate, None,
                                                   t.optimizer_config),
                          loss=make_loss(t.loss, t.from_logits))
            model.fit(to_tensors(subject.inputs.feed()), y, epochs=t.epochs or 30,
                      batch_size=t.batch_size, verbose=0)
            device = str(model.weights[0].value.device)
            return time.perf_counter() - started, device

    return GpuCheckWorker


def problems_of(actor: int, result: dict[str, Any],
                recorded: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What is wrong with one actor's run: (placement problems: no GPU given, a case on the
    CPU; other problems: OOM, a case not ok). A CPU rehearsal expects only the first kind."""
    placement, other = [], []
    if not result["gpu_ids"] or not result["visible_gpus"]:
        placement.append(f"actor {actor}: Ray gave it no GPU (gpu_ids {result['gpu_ids']}, "
                         f"{result['visible_gpus']} visible to TensorFlow)")
    for name, row in result["cases"].items():
        status = row["status"]
        if status.get("status") != "ok":
            error = str(status.get("error", ""))
            kind = "OOM" if any(m in error for m in OOM_MARKERS) else "not ok"
            other.append(f"actor {actor}: {name}: {kind}: {status}")
        if not recorded.get(name):
            placement.append(f"actor {actor}: {name}: the report recorded no gpu_ids")
        if row.get("peak_mb", 0.0) <= 0 or "GPU" not in row["device"].upper():
            placement.append(f"actor {actor}: {name}: ran on the CPU (peak GPU memory "
                             f"{row.get('peak_mb', 0.0):.0f} MiB, weights on {row['device']})")
    return placement, other


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=4, help="actors sharing the GPU "
                        "(each asks num_gpus 1/actors; default 4)")
    parser.add_argument("--keep", type=Path, default=None, help="build the cases and write "
                        "the reports here (default: a temp folder, removed)")
    parser.add_argument("--cpu-rehearsal", action="store_true", help="run every step on a "
                        "machine without a GPU (num_gpus 0), to check the script itself: the "
                        "GPU placement checks fail as expected and are counted; exit 0 when "
                        "every other check passed")
    args = parser.parse_args()
    count, why = (1, "") if args.cpu_rehearsal else gpu_count()
    if count <= 0:
        print(f"gpu_check: no GPU to check on this machine: {why}")
        return 1 if count < 0 else 0
    import ray

    from audit.fleet.worker import WorkerConfig
    from audit.manifest.case import Resources
    from audit.reports import query

    folder = args.keep or Path(tempfile.mkdtemp(prefix="flatline-gpu-check-"))
    specs = build_cases(folder / "zoo")
    share = 0.0 if args.cpu_rehearsal else 1.0 / args.actors
    cpus = max(0.25, min(1.0, (os.cpu_count() or 1) / args.actors))
    resources = Resources(num_cpus=cpus, num_gpus=share)
    output = str(folder / "reports")
    config = WorkerConfig(output=output, run_id="gpu-check", resources=resources)
    ray.init(address="local", num_gpus=0 if args.cpu_rehearsal else 1,
             include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    problems: list[str] = []
    expected: list[str] = []  # placement problems a CPU rehearsal must show
    results: list[dict[str, Any] | None] = []
    try:
        actor_class = ray.remote(worker_class()).options(num_cpus=cpus, num_gpus=share,
                                                         max_restarts=0)
        actors = [actor_class.remote(config) for _ in range(args.actors)]
        refs = [actor.check.remote(for_actor(specs, i)) for i, actor in enumerate(actors)]
        for i, ref in enumerate(refs):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as exc:  # an OOM kills the worker
                results.append(None)
                problems.append(f"actor {i}: OOM or crash: {' '.join(str(exc).split())[:300]}")
    finally:
        ray.shutdown()
    _, rows = query(output, "select name, gpu_ids from cases")
    recorded = {name: list(gpu_ids or []) for name, gpu_ids in rows}
    for i, result in enumerate(results):
        if result is None:
            continue
        peaks = ", ".join(f"{n} {r.get('peak_mb', 0):.0f} MiB" for n, r in
                          result["cases"].items())
        limit = f"{result['limit_mb']} MiB" if result["limit_mb"] else "none (memory growth)"
        print(f"actor {i}: gpu_ids {result['gpu_ids']} limit {limit} peak "
              f"{max((r.get('peak_mb', 0) for r in result['cases'].values()), default=0):.0f} "
              f"MiB ({peaks})")
        for name, row in result["cases"].items():
            print(f"  {name}: audit {row['audit_s']:.1f} s vs fit {row['fit_s']:.1f} s "
                  f"(fit / audit {row['fit_s'] / row['audit_s']:.2f}), weights on "
                  f"{row['device']}")
        placement, other = problems_of(i, result, recorded)
        problems += other
        expected += placement
    if not args.cpu_rehearsal:
        problems, expected = expected + problems, []
    for problem in problems:
        print(f"FAILED: {problem}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if expected:  # a rehearsal: every case ran, on the CPU, as it must without a GPU
        print(f"gpu_check: rehearsal on the CPU: {len(expected)} GPU placement check(s) "
              "failed as expected without a GPU")
    print("gpu_check: ok" if not problems else f"gpu_check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
