"""Where files live: local paths, `file://`, `s3://` and `gs://` URIs (with their query, e.g.
`?endpoint_override=...`), read and listed through `pyarrow.fs`.

The one module that knows URI syntax: the manifest resolves and globs with it, the loaders open
models and tables with it, the report store and the Jobs client ask it whether a location is
local. No TensorFlow, no Ray.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.errors import LocationError

__all__ = [
    "S3_MAX_ATTEMPTS",
    "LocationError",
    "exists",
    "expand_glob",
    "filesystem",
    "has_glob",
    "is_local",
    "is_uri",
    "local_copy",
    "parent_name",
    "resolve_location",
    "stem",
    "without_query",
]


def is_uri(location: str) -> bool:
    return "://" in location


def has_glob(location: str) -> bool:
    """Whether a location is a glob pattern (`*`, `?` or `[` in its path)."""
    return bool(set(without_query(location)) & set("*?["))


def is_local(location: str) -> bool:
    """A plain path or a `file://` URI."""
    return not is_uri(location) or location.startswith("file://")


def resolve_location(location: str, base_dir: str) -> str:
    """A URI as is; `~` expanded; a relative path joined to `base_dir`."""
    if is_uri(location):
        return location
    path = Path(location).expanduser()
    if not path.is_absolute() and base_dir:
        path = Path(base_dir) / path
    return os.path.normpath(str(path))


def without_query(location: str) -> str:
    """`s3://b/m.keras?endpoint_override=...` -> `s3://b/m.keras`."""
    head, _, tail = location.rpartition("?")
    return head if is_uri(location) and head and "=" in tail else location


def stem(location: str) -> str:
    """The file name without its suffixes: `models/churn.v3.keras` -> `churn`."""
    name = without_query(location).rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] if not name.startswith(".") else name


def parent_name(location: str) -> str:
    parts = without_query(location).rstrip("/").rsplit("/", 2)
    return parts[-2] if len(parts) >= 2 else ""


#: object stores answer 500, 503 and SlowDown now and then (a busy bucket, a throttled prefix):
#: every S3 request is retried with the AWS SDK's standard backoff, up to ~20 s over this many
#: attempts (pyarrow's default is 3, and `from_uri` takes no retry setting)
S3_MAX_ATTEMPTS = 10


def filesystem(location: str) -> tuple[Any, str]:
    """The `pyarrow.fs` filesystem of a location and the path inside it (an S3 filesystem
    retries each request `S3_MAX_ATTEMPTS` times)."""
    import pyarrow.fs as pafs

    if is_local(location):
        return pafs.LocalFileSystem(), location.removeprefix("file://")
    fs, path = pafs.FileSystem.from_uri(location)
    if isinstance(fs, pafs.S3FileSystem):
        _, (options,) = fs.__reduce__()  # the options it was made with (credentials stay
        fs = pafs.S3FileSystem(**{  # unset when they came from the environment)
            **options, "retry_strategy": pafs.AwsStandardS3RetryStrategy(
                max_attempts=S3_MAX_ATTEMPTS)})
    return fs, path


def exists(location: str) -> bool:
    """Whether a file or folder is there (a glob: whether a file matches it)."""
    import pyarrow.fs as pafs

    if has_glob(location):
        try:
            return bool(expand_glob(location))
        except (OSError, ValueError):
            return False
    try:
        fs, path = filesystem(location)
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def local_copy(location: str) -> Iterator[str]:
    """A local path for `location`: itself when local, else a temporary copy (a file or a
    folder, e.g. a SavedModel) removed on exit. Raises `LocationError` when it is not there."""
    if is_local(location):
        yield location.removeprefix("file://")
        return
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    with tempfile.TemporaryDirectory(prefix="flatline-") as tmp:
        target = os.path.join(tmp, Path(path).name)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise LocationError(f"{location}: not found")
        if info.type == pafs.FileType.Directory:
            pafs.copy_files(path, target, source_filesystem=fs)
        else:
            with fs.open_input_stream(path) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
        yield target


def expand_glob(pattern: str) -> list[str]:
    """Sorted matches of a glob (`**` spans folders), locally or on an object store."""
    if is_local(pattern):
        local = pattern.removeprefix("file://")
        matches = sorted(glob.glob(local, recursive=True))
        return [f"file://{m}" for m in matches] if pattern.startswith("file://") else matches
    import pyarrow.fs as pafs

    fs, path = filesystem(pattern)
    scheme = pattern.split("://", 1)[0]
    query = pattern[len(without_query(pattern)):]  # e.g. ?endpoint_override=...: kept
    root = _glob_root(path)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    regex = _glob_regex(path)
    return sorted(f"{scheme}://{info.path}{query}" for info in fs.get_file_info(selector)
                  if regex.fullmatch(info.path))


def _glob_root(path: str) -> str:
    parts = path.split("/")
    fixed = list(itertools.takewhile(lambda p: not set(p) & set("*?["), parts))
    return "/".join(fixed[: len(parts) - 1] if len(fixed) == len(parts) else fixed)


def _glob_regex(path: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(path):
        if path.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif path.startswith("**", i):
            out, i = out + ".*", i + 2
        elif path[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif path[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(path[i]), i + 1
    return re.compile(out)
