"""Stable case ids: what defines a case, hashed, so an unchanged case keeps its id across runs
(`--resume` and `audit diff` rely on it). Files are hashed by content; a registry's model
version by the registry's own identity."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from audit.locations import filesystem

if TYPE_CHECKING:
    from audit.spec import CaseSpec

__all__ = ["case_id", "content_digest", "slug"]


def case_id(spec: CaseSpec) -> str:
    """`<name-slug>-<digest>`: the digest covers the model's and data's contents (for a
    registry's model version: the registry URI, model name and version, and the data's
    location) and every setting that changes the result, so an unchanged case keeps its id
    across runs."""
    settings = spec.model_dump(mode="json", exclude={"case_id", "name", "model", "data",
                                                     "time_limit_s", "registry", "error"})
    for key in ("inputs", "output", "classes"):  # added later: unset, ids stay unchanged
        if settings.get(key) is None:
            settings.pop(key, None)
    from audit.spec import Budget

    for key in ("max_rows", "flops"):  # added later: at their defaults, ids stay unchanged
        if settings["budget"].get(key) == getattr(Budget(), key):
            settings["budget"].pop(key)
    if spec.registry is not None:  # the registry's identity: nothing downloaded to hash
        version = spec.registry
        identity = {"registry": [version.registry, version.uri, version.model_name,
                                 version.version], "data": spec.data}
    else:
        identity = {"model": content_digest(spec.model), "data": content_digest(spec.data)}
    payload = json.dumps({**identity, **settings}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"{slug(spec.name, 48)}-{digest}"


def slug(text: str, limit: int = 60) -> str:
    """A safe file/partition name: lowercase letters, digits, '.', '_' and '-'."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return cleaned[:limit].rstrip("-.") or "case"


_DIGESTS: dict[tuple[str, int, int], str] = {}


def content_digest(location: str) -> str:
    """sha256 of a file's bytes (a folder: of its files' names and bytes); for a missing file,
    a digest of its location, so the case still gets an id and fails later with a clear error."""
    import pyarrow.fs as pafs

    try:
        fs, path = filesystem(location)
        info = fs.get_file_info(path)
    except (OSError, ValueError):
        return "unreadable:" + location
    if info.type == pafs.FileType.NotFound:
        return "missing:" + location
    key = (location, int(info.size or 0), int(info.mtime_ns or 0))
    if key not in _DIGESTS:
        _DIGESTS[key] = _digest(fs, path, info)
    return _DIGESTS[key]


def _digest(fs: Any, path: str, info: Any) -> str:
    import pyarrow.fs as pafs

    sha = hashlib.sha256()
    if info.type == pafs.FileType.Directory:
        selector = pafs.FileSelector(path, recursive=True)
        files = sorted((f for f in fs.get_file_info(selector) if f.type == pafs.FileType.File),
                       key=lambda f: f.path)
        for f in files:
            sha.update(f.path[len(path):].encode())
            _update(sha, fs, f.path)
    else:
        _update(sha, fs, path)
    return sha.hexdigest()


def _update(sha: Any, fs: Any, path: str) -> None:
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            sha.update(chunk)
