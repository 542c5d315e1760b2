"""Submitting a run: what a manifest says (name, digest, output, case count), the run id it
gets, what may travel as the job's working_dir, and the job itself, submitted once as
`audit-<run_id>` (a second submit finds the first job and reports it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.io import locations
from audit.jobs.connection import JobsError, call, find_job
from audit.manifest import schema as spec
from audit.util.text import RUN_ID_RULE, is_run_id

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

SUBMISSION_PREFIX = "audit-"
DEFAULT_MAX_WORKING_DIR_BYTES = 8 * 1024 * 1024
DEFAULT_STOP_GRACE_S = 30
# Folders never shipped with the manifest (and not counted against the size limit).
WORKING_DIR_EXCLUDES = (".git", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache")
META_RUN_ID = "flatline_run_id"
META_DIGEST = "flatline_manifest_digest"
META_MANIFEST = "flatline_manifest"
META_OUTPUT = "flatline_output"
META_CASES = "flatline_cases"


@dataclass(frozen=True)
class ManifestInfo:
    """What a submission needs to know about a manifest, without loading any model."""

    path: Path  # the manifest file, absolute
    name: str
    digest: str  # sha256 of the manifest's bytes
    output: str  # as written in the manifest (relative, absolute or a URI)
    n_cases: int | None  # None when the fleet globs could not be expanded here

    @property
    def folder(self) -> Path:
        return self.path.parent


@dataclass(frozen=True)
class SubmitOptions:
    """How to submit: which run, the driver's own resources, and the shipping limits."""

    run_id: str
    num_cpus: float | None = None
    num_gpus: float | None = None
    max_working_dir_bytes: int = DEFAULT_MAX_WORKING_DIR_BYTES
    stop_grace_s: int = DEFAULT_STOP_GRACE_S
    extra_args: tuple[str, ...] = ()  # more `audit run` options, e.g. ("--trust-models",)


@dataclass(frozen=True)
class SubmitResult:
    """The job that runs the submission; `created` is False when it already existed."""

    run_id: str
    submission_id: str
    created: bool
    state: str


def describe_manifest(path: Path) -> ManifestInfo:
    """Name, digest, output and case count of a manifest, validated by `audit.manifest.schema`.

    Counting reads no model or data: it expands fleet globs only (None if that fails here).
    """

    path = path.resolve()
    try:
        manifest = spec.load_manifest(path)
        raw = path.read_bytes()
    except spec.ManifestError as exc:
        raise JobsError(str(exc)) from None
    except OSError as exc:
        raise JobsError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    return ManifestInfo(
        path=path,
        name=manifest.name,
        digest=hashlib.sha256(raw).hexdigest(),
        output=manifest.output,
        n_cases=_count_cases(manifest),
    )


def _count_cases(manifest: Any) -> int | None:

    count = len(manifest.entries)
    for entry in manifest.fleet:
        try:
            count += len(locations.expand_glob(
                locations.resolve_location(entry.models, manifest.base_dir)))
        except (OSError, ValueError):  # e.g. no credentials for the bucket on this machine
            return None
    return count


def derive_run_id(info: ManifestInfo) -> str:
    """`<name>-<digest[:10]>`: the same manifest always names the same run."""
    slug = re.sub(r"[^a-z0-9]+", "-", info.name.lower()).strip("-")[:60] or "run"
    return f"{slug}-{info.digest[:10]}"


def check_run_id(run_id: str) -> str:
    """A run id is a safe slug: it becomes a Hive folder and a Ray submission id."""
    if not is_run_id(run_id):
        raise JobsError(f"run id {run_id!r} is not a safe slug; {RUN_ID_RULE}")
    return run_id


def submission_id(run_id: str) -> str:
    """The Ray submission id of a run; accepts either form."""
    run_id = run_id.removeprefix(SUBMISSION_PREFIX)
    return f"{SUBMISSION_PREFIX}{check_run_id(run_id)}"


# ---------------------------------------------------------------- submit


def check_submittable(info: ManifestInfo, max_bytes: int) -> int:
    """Refuse what cannot work on a cluster; returns the working_dir's size in bytes.

    A relative `output` would land in the job's temporary copy of the folder and be lost; a
    large folder means models or data travel with the job instead of living in shared storage.
    """
    if not locations.is_uri(info.output) and not Path(info.output).is_absolute():
        raise JobsError(
            f"{info.path.name}: output {info.output!r} is relative, so on the cluster the "
            "reports would land in the job's temporary working_dir; set output to a bucket "
            "URI (s3://bucket/flatline) or an absolute path on a shared mount"
        )
    size = working_dir_bytes(info.folder)
    if size > max_bytes:
        raise JobsError(
            f"{info.folder}: {size / 2**20:.1f} MiB is too large to ship as the job's "
            f"working_dir (limit {max_bytes / 2**20:.0f} MiB); keep only manifests there and "
            "put models and data in shared storage (s3://..., gs://... or a shared mount)"
        )
    return size


def working_dir_bytes(folder: Path) -> int:
    """Bytes Ray would upload for `folder`, skipping the excluded folders."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in WORKING_DIR_EXCLUDES]
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def entrypoint(info: ManifestInfo, options: SubmitOptions) -> str:
    """The job's shell command; it runs inside the shipped manifest folder."""
    args = ["audit", "run", info.path.name, "--run-id", options.run_id, *options.extra_args]
    return shlex.join(args)


def job_metadata(info: ManifestInfo, run_id: str) -> dict[str, str]:
    """What `audit status` needs later: the run, the manifest, where reports go."""
    meta = {
        META_RUN_ID: run_id,
        META_DIGEST: info.digest,
        META_MANIFEST: info.path.name,
        META_OUTPUT: info.output,
    }
    if info.n_cases is not None:
        meta[META_CASES] = str(info.n_cases)
    return meta


def submit(client: JobSubmissionClient, info: ManifestInfo, options: SubmitOptions) -> SubmitResult:
    """Submit the run as `audit-<run_id>`, or report the job that already runs it."""
    run_id = check_run_id(options.run_id)
    sid = submission_id(run_id)
    existing = find_job(client, sid)
    if existing is not None:
        return SubmitResult(run_id, sid, created=False, state=str(existing.status.value))
    check_submittable(info, options.max_working_dir_bytes)
    runtime_env = {
        "working_dir": str(info.folder),
        "excludes": list(WORKING_DIR_EXCLUDES),
        # Ray waits this long after SIGTERM before SIGKILL: time to record finished cases.
        "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(options.stop_grace_s)},
    }
    try:
        call(
            f"submit {sid}",
            lambda: client.submit_job(
                entrypoint=entrypoint(info, options),
                submission_id=sid,
                runtime_env=runtime_env,
                metadata=job_metadata(info, run_id),
                entrypoint_num_cpus=options.num_cpus,
                entrypoint_num_gpus=options.num_gpus,
            ),
        )
    except JobsError as exc:
        if "already exists" not in str(exc):
            raise
        state = find_job(client, sid)  # submitted concurrently by someone else
        return SubmitResult(run_id, sid, False, str(state.status.value) if state else "UNKNOWN")
    return SubmitResult(run_id, sid, created=True, state="PENDING")
