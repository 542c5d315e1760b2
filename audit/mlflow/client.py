"""The MLflow client as the registry source and the publisher use it: made for one tracking
URI, with quick retries, and its errors turned into one line each.

`mlflow` is imported here, on first use only, so audits without a registry never pay for it.
Credentials stay MLflow's business: its client reads MLFLOW_TRACKING_TOKEN or
MLFLOW_TRACKING_USERNAME/PASSWORD itself, and nothing here stores them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from audit.util.text import one_line

__all__ = ["QUICK_RETRIES", "describe", "is_missing", "make_client", "quick_retries",
           "tracking_uri"]

#: MLflow's HTTP retry settings while Flatline talks to a registry, unless the environment
#: sets them: its defaults (7 retries, backoff factor 2, 120 s timeout) wait minutes for a
#: server that is down, per call
QUICK_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


@contextlib.contextmanager
def quick_retries() -> Iterator[None]:
    """MLflow's HTTP retries shortened (`QUICK_RETRIES`) where the environment leaves them
    unset; restored on exit."""
    added = [key for key in QUICK_RETRIES if key not in os.environ]
    for key in added:
        os.environ[key] = QUICK_RETRIES[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to `uri` for the block: resolving
    a `models:/m-<id>` source reads them, whatever URI the call was given."""
    import mlflow

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def make_client(uri: str) -> Any:
    """An `MlflowClient` for tracking and registry at `uri` (credentials from MLflow's own
    environment variables)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def is_missing(exc: BaseException) -> bool:
    """The registry answered that the thing asked for does not exist (an unknown alias comes
    back as INVALID_PARAMETER_VALUE, "... alias champion not found")."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


def describe(exc: BaseException, limit: int = 240) -> str:
    """One line for an MLflow client error: refused credentials and an unreachable server
    said plainly, anything else shortened."""
    text = one_line(exc, 10_000)
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if status in (401, 403) or "status code 401" in text or "status code 403" in text or \
            "Unauthorized" in text:
        return ("the server refused the credentials (HTTP 401/403); check "
                "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD")
    if "Max retries exceeded" in text or "Connection refused" in text or \
            "NewConnectionError" in text:
        return "the server cannot be reached (connection refused or timed out)"
    return one_line(exc, limit)
