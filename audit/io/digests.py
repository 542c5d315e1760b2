"""File digests, computed once per change: sha256 of a file's (or a folder's) bytes, kept in a
persistent cache keyed by what says the file changed, so that a second night over an unchanged
fleet reads no file contents.

What says a file changed (its *identity*):

- a local file or a shared mount: its path, size, mtime (ns) and inode, as DVC's state file
  and git's index keep them; a folder (a SavedModel): the same for every file in it;
- S3: the object's ETag and size (asked with one HEAD through `boto3` when it is installed;
  `pyarrow.fs` exposes neither the ETag nor a version). A new object at the same key has a new
  ETag, so it is seen as changed;
- anything else (GCS through `pyarrow.fs`, which exposes no generation or CRC32C; S3 without
  `boto3`): no identity, so the file is hashed every time, as before. `no_identity_reason`
  says why, for the docs and the logs.

The digest itself is what it always was, so case ids do not change. A file whose mtime is
within `RACY_S` of the moment it was hashed is not persisted (git's "racily clean" rule: a
write in the same clock tick as the hash would go unseen on a coarse-mtime file system); the
next process hashes it again.

The cache is one SQLite file (`digests.sqlite`, safe for concurrent readers and writers)
under `$FLATLINE_CACHE_DIR`, else `$XDG_CACHE_HOME/flatline`, else `~/.cache/flatline`;
`FLATLINE_DIGEST_CACHE=off` turns it off. A cache that cannot be opened or written is
skipped with one warning: digests are then computed as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from typing import Any

from audit.io.locations import expand_glob, filesystem, has_glob, without_query

__all__ = ["RACY_S", "cache_folder", "content_digest", "identity", "no_identity_reason"]

log = logging.getLogger("audit.io")

#: a file modified this close to its hashing is hashed again by the next process
RACY_S = 2.0
CACHE_FILE = "digests.sqlite"

#: this process's digests by (location, identity): a fleet naming one data file for many
#: models hashes it once
_DIGESTS: dict[tuple[str, str], str] = {}
_CONNECTIONS: dict[str, sqlite3.Connection | None] = {}


def cache_folder() -> str | None:
    """Where the persistent digest cache lives; None when it is turned off."""
    if os.environ.get("FLATLINE_DIGEST_CACHE", "").lower() in ("off", "0", "false", "no"):
        return None
    if os.environ.get("FLATLINE_CACHE_DIR"):
        return os.environ["FLATLINE_CACHE_DIR"]
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "flatline")


def content_digest(location: str) -> str:
    """sha256 of a file's bytes (a folder: of its files' names and bytes); for a missing file,
    a digest of its location, so the case still gets an id and fails later with a clear error;
    a glob (shards): of each match's name and digest. Computed once per change of the file's
    identity (see the module's docstring)."""
    import pyarrow.fs as pafs

    if has_glob(location):
        return _glob_digest(location)
    try:
        fs, path = filesystem(location)
        info = fs.get_file_info(path)
    except (OSError, ValueError):
        return "unreadable:" + location
    if info.type == pafs.FileType.NotFound:
        return "missing:" + location
    ident, newest = identity(location, fs, path, info)
    key = (location, ident or f"stat:{int(info.size or 0)}:{int(info.mtime_ns or 0)}")
    if key in _DIGESTS:
        return _DIGESTS[key]
    cached = _lookup(location, ident) if ident else None
    if cached is None:
        started = time.time()
        cached = hash_contents(fs, path, info)
        if ident and (newest is None or newest < started - RACY_S):
            _store(location, ident, cached)
    _DIGESTS[key] = cached
    return cached


def _glob_digest(pattern: str) -> str:
    try:
        matches = expand_glob(pattern)
    except (OSError, ValueError):
        return "unreadable:" + pattern
    if not matches:
        return "missing:" + pattern
    sha = hashlib.sha256()
    for match in matches:
        sha.update(f"{without_query(match).rsplit('/', 1)[-1]}\0{content_digest(match)}\n"
                   .encode())
    return sha.hexdigest()


def identity(location: str, fs: Any, path: str, info: Any) -> tuple[str | None, float | None]:
    """What says the file at `location` changed, without reading it, and the newest mtime
    (seconds) it rests on (None for an object store's own identity); (None, None) when the
    store offers none (then the file is hashed)."""
    import pyarrow.fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        if info.type == pafs.FileType.Directory:
            return _folder_identity(fs, path)
        st = os.stat(path)
        return f"local:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}", st.st_mtime_ns / 1e9
    if isinstance(fs, pafs.S3FileSystem) and info.type == pafs.FileType.File:
        etag = _s3_etag(fs, location)
        return (f"s3:{etag}:{int(info.size or 0)}", None) if etag else (None, None)
    return None, None


def no_identity_reason(location: str) -> str | None:
    """Why a location has no content identity of its own (so it is hashed every night)."""
    scheme = location.split("://", 1)[0] if "://" in location else "file"
    if scheme == "gs":
        return ("pyarrow.fs exposes no GCS generation or CRC32C (and google-cloud-storage is "
                "not used): gs:// files are hashed every run")
    if scheme == "s3":
        try:
            import boto3  # noqa: F401
        except ImportError:
            return "boto3 is not installed, so S3 ETags cannot be read: s3:// files are hashed"
        return None
    if scheme in ("file",):
        return None
    return f"no content identity for {scheme}:// locations: they are hashed every run"


def hash_contents(fs: Any, path: str, info: Any) -> str:
    """sha256 of the bytes (a folder: each file's relative name, then its bytes, sorted)."""
    import pyarrow.fs as pafs

    sha = hashlib.sha256()
    if info.type == pafs.FileType.Directory:
        for f in _files(fs, path):
            sha.update(f.path[len(path):].encode())
            _update(sha, fs, f.path)
    else:
        _update(sha, fs, path)
    return sha.hexdigest()


def _files(fs: Any, path: str) -> list[Any]:
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(path, recursive=True)
    return sorted((f for f in fs.get_file_info(selector) if f.type == pafs.FileType.File),
                  key=lambda f: f.path)


def _update(sha: Any, fs: Any, path: str) -> None:
    with fs.open_input_stream(path, compression=None) as stream:
        while chunk := stream.read(1 << 20):
            sha.update(chunk)


def _folder_identity(fs: Any, path: str) -> tuple[str, float]:
    """A folder's identity: every file's relative name, size, mtime and inode, hashed."""
    sha, newest = hashlib.sha256(), 0.0
    for f in _files(fs, path):
        st = os.stat(f.path)
        sha.update(f"{f.path[len(path):]}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n"
                   .encode())
        newest = max(newest, st.st_mtime_ns / 1e9)
    return f"folder:{sha.hexdigest()}", newest


def _s3_etag(fs: Any, location: str) -> str | None:
    """The object's ETag through one HEAD (boto3, with the filesystem's own endpoint and
    credentials); None when boto3 is missing or the HEAD fails (the file is then hashed)."""
    try:
        import boto3  # optional: only for an S3 object's ETag
    except ImportError:
        return None
    _, (options,) = fs.__reduce__()
    bucket, _, key = without_query(location).split("://", 1)[1].partition("/")
    endpoint = options.get("endpoint_override") or None
    if endpoint and "://" not in endpoint:
        endpoint = f"{options.get('scheme') or 'https'}://{endpoint}"
    try:
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=options.get("region") or None,
            aws_access_key_id=options.get("access_key") or None,
            aws_secret_access_key=options.get("secret_key") or None,
            aws_session_token=options.get("session_token") or None)
        etag = client.head_object(Bucket=bucket, Key=key).get("ETag")
    except Exception as exc:  # any failure: no identity, the file is hashed
        log.info("no ETag for %s (%s): hashing it", location, type(exc).__name__)
        return None
    return str(etag).strip('"') or None


# ---------------------------------------------------------------- the persistent cache


def _connection() -> sqlite3.Connection | None:
    folder = cache_folder()
    if folder is None:
        return None
    if folder not in _CONNECTIONS:
        _CONNECTIONS[folder] = None
        try:
            os.makedirs(folder, exist_ok=True)
            con = sqlite3.connect(os.path.join(folder, CACHE_FILE), timeout=10,
                                  isolation_level=None, check_same_thread=False)
            with contextlib.suppress(sqlite3.DatabaseError):
                con.execute("pragma journal_mode=wal")
            con.execute("create table if not exists digests (location text primary key, "
                        "identity text not null, digest text not null, hashed_at real)")
            _CONNECTIONS[folder] = con
        except (OSError, sqlite3.Error) as exc:
            log.warning("digest cache %s cannot be used (%s); file digests are computed "
                        "every run", folder, exc)
    return _CONNECTIONS[folder]


def _lookup(location: str, ident: str) -> str | None:
    con = _connection()
    if con is None:
        return None
    try:
        row = con.execute("select digest from digests where location = ? and identity = ?",
                          (location, ident)).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _store(location: str, ident: str, digest: str) -> None:
    con = _connection()
    if con is None:
        return
    try:
        con.execute("insert or replace into digests values (?, ?, ?, ?)",
                    (location, ident, digest, time.time()))
    except sqlite3.Error as exc:
        log.warning("digest cache: cannot write (%s); the next run hashes %s again",
                    exc, location)
