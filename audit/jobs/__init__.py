"""Ray Jobs: submit an audit run to a shared cluster, and follow, list and stop it.

A run travels as one Ray Job whose submission id is `audit-<run_id>`, so submitting the same
run twice is harmless: the second submit finds the first job and reports it. The job's
entrypoint is `audit run <manifest> --run-id <RUN>`, started in the manifest's folder (shipped
as a small `working_dir`). Models, data and reports stay in shared storage, named by URI.

The client authenticates with Ray's token (`Authorization: Bearer <token>`), found by
`find_token` the way Ray itself looks for it. Every failure to reach or use the cluster raises
`JobsError` with one line that says what happened and what to do; the CLI prints it.

No TensorFlow here, and Ray's job client is imported only when a command talks to a cluster.

The package by job: `client` (the token, the connection, retries and errors), `submission`
(manifests, run ids, what ships, submit) and `runs` (status, list, stop, logs).
"""

from __future__ import annotations

from audit.jobs.connection import (
    DEFAULT_SUBMIT_WAIT_S,
    DEFAULT_WAIT_S,
    Backoff,
    ClusterConfig,
    JobsError,
    RetriesExhausted,
    RetryingClient,
    connect,
    find_token,
    is_transient,
    retry,
)
from audit.jobs.runs import (
    TERMINAL_STATES,
    CaseCounts,
    RunInfo,
    case_counts,
    entrypoint_error,
    follow_logs,
    get_logs,
    get_run,
    list_runs,
    stop_run,
)
from audit.jobs.submission import (
    DEFAULT_MAX_WORKING_DIR_BYTES,
    DEFAULT_STOP_GRACE_S,
    SUBMISSION_PREFIX,
    WORKING_DIR_EXCLUDES,
    ManifestInfo,
    SubmitOptions,
    SubmitResult,
    check_run_id,
    check_submittable,
    derive_run_id,
    describe_manifest,
    entrypoint,
    job_metadata,
    submission_id,
    submit,
    working_dir_bytes,
)

__all__ = [
    "DEFAULT_MAX_WORKING_DIR_BYTES",
    "DEFAULT_STOP_GRACE_S",
    "DEFAULT_SUBMIT_WAIT_S",
    "DEFAULT_WAIT_S",
    "SUBMISSION_PREFIX",
    "TERMINAL_STATES",
    "WORKING_DIR_EXCLUDES",
    "Backoff",
    "CaseCounts",
    "ClusterConfig",
    "JobsError",
    "ManifestInfo",
    "RetriesExhausted",
    "RetryingClient",
    "RunInfo",
    "SubmitOptions",
    "SubmitResult",
    "case_counts",
    "check_run_id",
    "check_submittable",
    "connect",
    "derive_run_id",
    "describe_manifest",
    "entrypoint",
    "entrypoint_error",
    "find_token",
    "follow_logs",
    "get_logs",
    "get_run",
    "is_transient",
    "job_metadata",
    "list_runs",
    "retry",
    "stop_run",
    "submission_id",
    "submit",
    "working_dir_bytes",
]
