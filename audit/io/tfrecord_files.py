"""TFRecord datasets as files: which locations are TFRecord, the shards a file, glob or folder
names, their compression, and what the first bytes of a shard tell without TensorFlow's
reader: the first records (to see the features) and records per byte (to estimate a shard's
size without reading it whole).

The first bytes are read through `pyarrow.fs`, so this works the same on a local disk and in a
bucket; only whole shards that are read go through `tf.data` (`audit.io.tfrecord`).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from audit.errors import LocationError, TableError
from audit.io import locations
from audit.util.text import one_line

__all__ = ["Prefix", "Shard", "compression_of", "is_tfrecord", "looks_like_tfrecord",
           "read_prefix", "shard_files"]

#: compression names tf.data takes, by what a data_format may say
COMPRESSIONS = {"GZIP": "GZIP", "ZLIB": "ZLIB", "NONE": "", "": ""}
_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".tfrecord.zlib",
             ".tfrecords.zlib")
#: files in a folder of shards that are not shards (a TFX split folder holds only shards, a
#: Beam/Spark job's output folder holds markers and the schema beside them)
_NOT_SHARDS = re.compile(r"^[._]|\.(pbtxt|pb|json|txt|crc|md|yaml|yml)$|^schema", re.I)
OTHER_FORMATS = (".parquet", ".csv", ".npz")
PREFIX_BYTES = 1 << 20  # bytes read from a shard's start to see records (grows for big ones)
MAX_PREFIX_BYTES = 64 << 20


@dataclass(frozen=True)
class Shard:
    """One TFRecord file: where it is, its size in bytes, and its compression for tf.data."""

    location: str
    size: int
    compression: str  # GZIP | ZLIB | "" (none)


def looks_like_tfrecord(location: str) -> bool:
    """A TFRecord file by its name: `.tfrecord[s]`, optionally `.gz`/`.zlib`, or a `.gz`
    whose name says tfrecord (TFX's `data_tfrecord-00000-of-00001.gz`)."""
    name = locations.without_query(location).rstrip("/").rsplit("/", 1)[-1].lower()
    return name.endswith(_SUFFIXES) or (
        "tfrecord" in name and name.endswith((".gz", ".zlib", ".z")))


def is_tfrecord(location: str, fmt: str | None) -> bool:
    """Whether a case's data is TFRecord: `data_format.type` when given, else its name (a
    glob's last part) or, for a folder, the names of the files in it."""
    if fmt is not None:
        return fmt.lower() == "tfrecord"
    if looks_like_tfrecord(location):
        return True
    if locations.has_glob(location) or _name(location).lower().endswith(OTHER_FORMATS):
        return False
    try:
        files = _folder_files(location)
    except (OSError, ValueError):
        return False
    return any(looks_like_tfrecord(f) for f, _ in files or [])


def compression_of(location: str, given: str | None) -> str:
    """tf.data's compression for one shard: `given` (GZIP, ZLIB, NONE), else its suffix."""
    if given is not None:
        key = given.upper()
        if key not in COMPRESSIONS:
            raise TableError(f"{location}: unknown TFRecord compression {given!r}; expected "
                             "GZIP, ZLIB or NONE")
        return COMPRESSIONS[key]
    name = locations.without_query(location).lower()
    if name.endswith(".gz"):
        return "GZIP"
    if name.endswith((".zlib", ".z")):
        return "ZLIB"
    return ""


def shard_files(location: str, compression: str | None = None) -> list[Shard]:
    """The shards a location names, sorted: one file, the files a glob matches, or the shard
    files of a folder (those named as TFRecord, else every file but markers such as
    `_SUCCESS` and a schema). Raises `LocationError` when there are none."""
    try:
        if locations.has_glob(location):
            found = [(m, _size(m)) for m in locations.expand_glob(location)]
            if not found:
                raise LocationError(f"{location}: no file matches the glob")
        else:
            found = _folder_files(location)
            if found is None:
                found = [(location, _size(location))]
            found = [(f, s) for f, s in found if not _NOT_SHARDS.search(_name(f))]
            named = [(f, s) for f, s in found if looks_like_tfrecord(f)]
            found = named or found  # shards by their names, else every file but markers
            if not found:
                raise LocationError(f"{location}: the folder holds no TFRecord shards")
    except LocationError:
        raise
    except (OSError, ValueError) as exc:
        raise LocationError(f"{location}: cannot list ({one_line(exc)})") from None
    return [Shard(f, s, compression_of(f, compression)) for f, s in sorted(found)]


def _name(location: str) -> str:
    return locations.without_query(location).rstrip("/").rsplit("/", 1)[-1]


def _size(location: str) -> int:
    import pyarrow.fs as pafs

    fs, path = locations.filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise LocationError(f"{location}: data file not found")
    return int(info.size or 0)


def _folder_files(location: str) -> list[tuple[str, int]] | None:
    """(location, size) of the files directly in a folder; None when it is not a folder."""
    import pyarrow.fs as pafs

    fs, path = locations.filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return None
    query = location[len(locations.without_query(location)):]
    base = locations.without_query(location).rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), recursive=False))
    return [(f"{base}/{info.base_name}{query}", int(info.size or 0)) for info in infos
            if info.type == pafs.FileType.File]


@dataclass(frozen=True)
class Prefix:
    """The complete records in a shard's first bytes, and what they say of the whole shard."""

    records: list[bytes]
    whole: bool  # the prefix was the whole shard: `records` is all of it
    records_per_byte: float  # records per byte of the file as stored (compressed or not)
    framed: bytes = b""  # the records with their framing and CRCs, uncompressed

    def estimate(self, size: int) -> int:
        """The shard's records: counted when the prefix was all of it, else estimated."""
        return len(self.records) if self.whole else max(1, round(self.records_per_byte * size))


def read_prefix(shard: Shard, want_records: int = 1) -> Prefix:
    """The records in the first bytes of `shard` (at least `want_records` when the shard has
    them, reading up to `MAX_PREFIX_BYTES`). Framing only, no CRC check: tf.data checks
    every record it reads. Raises `TableError` when the bytes are not TFRecord."""
    nbytes = PREFIX_BYTES
    while True:
        raw = _read_bytes(shard.location, nbytes)
        whole = len(raw) >= shard.size or len(raw) < nbytes
        data = _decompressed(shard, raw)
        records, used = _frames(data)
        if len(records) >= want_records or whole or nbytes >= MAX_PREFIX_BYTES:
            break
        nbytes *= 4
    if whole and used != len(data):
        raise TableError(f"{shard.location}: record {len(records)}: truncated or corrupt "
                         f"record at byte {used} of {len(data)}")
    if not records and raw:
        raise TableError(f"{shard.location}: record 0: no complete TFRecord record in the first "
                         f"{len(raw):,} bytes; is it a TFRecord file"
                         f"{' (' + shard.compression + ')' if shard.compression else ''}?")
    ratio = len(data) / len(raw) if raw else 1.0
    rate = len(records) / used * ratio if used else 0.0
    return Prefix(records, whole, rate, data[:used])


def _read_bytes(location: str, nbytes: int) -> bytes:
    try:
        fs, path = locations.filesystem(location)
        with fs.open_input_stream(path, compression=None) as stream:
            return bytes(stream.read(nbytes))
    except (OSError, ValueError) as exc:
        raise LocationError(f"{location}: cannot read ({one_line(exc)})") from None


def _decompressed(shard: Shard, raw: bytes) -> bytes:
    """The uncompressed bytes of a (prefix of a) shard; gzip members are read one by one."""
    if not shard.compression:
        return raw
    out, rest, wbits = [], raw, 31 if shard.compression == "GZIP" else 15
    try:
        while rest:
            inflater: Any = zlib.decompressobj(wbits)
            out.append(inflater.decompress(rest))
            if not inflater.eof:
                break
            rest = inflater.unused_data
    except zlib.error as exc:
        raise TableError(f"{shard.location}: record 0: not {shard.compression}-compressed "
                         f"TFRecord data ({exc}); set data_format: {{type: tfrecord, "
                         "compression: GZIP, ZLIB or NONE}") from None
    return b"".join(out)


def _frames(data: bytes) -> tuple[list[bytes], int]:
    """The complete records of TFRecord framing (length, its CRC, data, its CRC) and the
    bytes they take."""
    records, offset = [], 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        end = offset + 12 + length + 4
        if end > len(data):
            break
        records.append(data[offset + 12:offset + 12 + length])
        offset = end
    return records, offset
