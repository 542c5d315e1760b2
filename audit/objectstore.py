"""Object stores answer 500, 503 and SlowDown now and then (a busy bucket, a throttled prefix):
every request is retried with the AWS SDK's standard backoff before a write or read fails.

Kept apart from `audit.reports` so the one place that opens the report filesystem needs a
single call, and tests can read the setting.
"""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs

__all__ = ["S3_MAX_ATTEMPTS", "with_retries"]

S3_MAX_ATTEMPTS = 10  # the SDK's standard backoff: up to ~20 s per request over 10 attempts


def with_retries(fs: Any, root: str) -> tuple[Any, str]:
    """`(fs, root)` as `FileSystem.from_uri` returned them, with an S3 filesystem rebuilt with
    the same options and `S3_MAX_ATTEMPTS` attempts per request (pyarrow's default is 3, and
    `from_uri` takes no retry setting). Other filesystems are returned as they are."""
    if not isinstance(fs, pafs.S3FileSystem):
        return fs, root
    _, (options,) = fs.__reduce__()  # the options it was made with (credentials stay unset
    options = {**options, "retry_strategy":  # when they came from the environment)
               pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS)}
    return pafs.S3FileSystem(**options), root
