"""Where the report lives: atomic per-case writes and the listing and reading of its files.

Layout (the contract; see docs/report.md):

    <output>/runs/run_id=<RUN>/run.parquet              one row per run, written last
    <output>/cases/run_id=<RUN>/<case_id>.parquet       one row per case
    <output>/findings/run_id=<RUN>/<case_id>.parquet    one row per finding (maybe none)
    <output>/metrics/run_id=<RUN>/<case_id>.parquet     one row per probe metric

`run_id` lives only in the Hive folder name. Everything goes through `pyarrow.fs`, so `output`
may be a local folder or an s3://, gs://, file:// URI. A local file is written to a temporary
sibling and renamed with `os.replace`; on an object store the final key is written in one PUT.
A case's `cases` file is written after its findings and metrics, so its presence means the case
is complete (that is what `--resume` looks for).

A file that cannot be read (truncated by a crash or a full disk) or is not ours (another
tool's Parquet) is skipped by every reader, with one warning naming it (logger
`audit.reports`), and listed in `Store.unreadable` so callers can count it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from audit.errors import ReportError
from audit.evidence.results import CaseReport
from audit.io import locations
from audit.reports.columns import (
    KEY_COLUMNS,
    METADATA_KEY,
    SCHEMA_VERSION,
    SCHEMAS,
    RunRow,
    case_tables,
    run_table,
)
from audit.util.text import RUN_ID_RULE, is_run_id, one_line

__all__ = ["ReportError", "Store", "Unreadable", "check_run_id"]

log = logging.getLogger("audit.reports")


def check_run_id(run_id: str) -> str:
    """A run id becomes a Hive folder name, so it must be a safe slug."""
    if not is_run_id(run_id):
        raise ReportError(f"run id {run_id!r} is not a safe slug; {RUN_ID_RULE}")
    return run_id


@dataclass(frozen=True)
class Unreadable:
    """A Parquet file under the output that readers skip, and why."""

    path: str
    reason: str

    def line(self) -> str:
        return f"skipped unreadable file {self.path}: {self.reason}"


def _single_put(uri: str) -> str:
    """An s3:// URI whose writes go up in one PUT per file (pyarrow otherwise sends a small
    file as a three-request multipart upload, which a killed worker can leave half-open)."""
    if not uri.startswith("s3://") or "allow_delayed_open" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}allow_delayed_open=true"


class Store:
    """The report folder or bucket prefix at `output`, read and written through `pyarrow.fs`."""

    def __init__(self, output: str) -> None:
        self.output = output
        try:
            if locations.is_local(output):
                self.fs, root = locations.filesystem(output)
                self.root = os.path.abspath(root)
            else:
                self.fs, self.root = locations.filesystem(_single_put(output))
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise ReportError(f"output {output!r}: cannot open ({one_line(exc, 240)})") from None
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self._checked: dict[str, str | None] = {}  # path -> why unreadable (None: readable)

    def folder(self, table: str, run_id: str) -> str:
        return f"{self.root}/{table}/run_id={check_run_id(run_id)}"

    # writing -------------------------------------------------------------

    def write_case(self, run_id: str, report: CaseReport) -> None:
        """Write one case's findings, metrics, then its cases row (the 'done' marker)."""
        name = f"{_safe_name(report.case_id)}.parquet"
        for table, rows in case_tables(report).items():
            self._write(f"{self.folder(table, run_id)}/{name}", rows)

    def write_run(self, run_id: str, run: RunRow) -> None:
        """Write the run row; its presence means the run ended."""
        self._write(f"{self.folder('runs', run_id)}/run.parquet", run_table(run))

    def _write(self, path: str, table: pa.Table) -> None:
        table = table.replace_schema_metadata({METADATA_KEY: SCHEMA_VERSION.encode()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        payload = buffer.getvalue()
        try:
            if self.local:
                _replace_local(path, payload)
            else:
                with self.fs.open_output_stream(path) as out:  # one object, appears whole
                    out.write(payload)
        except OSError as exc:
            raise ReportError(f"cannot write {path} under {self.output}: {one_line(exc, 240)}"
                              ) from None
        self._checked.pop(path, None)

    # reading -------------------------------------------------------------

    def case_ids(self, run_id: str) -> set[str]:
        """Ids of the cases of `run_id` with a complete, readable report (for `--resume`: a
        case whose file is unreadable is run again)."""
        return {_case_id(p) for p in self.files("cases", run_id)}

    def case_status_by_id(self, run_id: str, ids: set[str] | None = None) -> dict[str, str]:
        """How each of the run's cases (or of those in `ids`) ended, by case id."""
        statuses: dict[str, str] = {}
        for path in self.files("cases", run_id):
            case_id = _case_id(path)
            if ids is None or case_id in ids:
                try:
                    status = pq.read_table(path, columns=["status"], filesystem=self.fs)
                except (OSError, pa.ArrowException) as exc:
                    self._skip(path, one_line(exc, 200))
                    continue
                statuses[case_id] = str(status.column(0)[0])
        return statuses

    def case_statuses(self, run_id: str, ids: set[str] | None = None) -> dict[str, int]:
        """How many of the run's cases (or of those in `ids`) ended in each status."""
        counts: dict[str, int] = {}
        for status in self.case_status_by_id(run_id, ids).values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def run_status(self, run_id: str) -> str | None:
        """How the run ended (`finished` or `stopped`), or None while it goes on (no
        readable run row)."""
        path = f"{self.folder('runs', run_id)}/run.parquet"
        if self.fs.get_file_info(path).type != pafs.FileType.File or \
                not self._readable("runs", path):
            return None
        try:
            return pq.read_table(path, columns=["status"], filesystem=self.fs)[0][0].as_py()
        except (OSError, pa.ArrowException) as exc:
            self._skip(path, one_line(exc, 200))
            return None

    def run_ids(self) -> list[str]:
        """Runs with any case or run row under this output, oldest folder name first."""
        ids: set[str] = set()
        for table in ("runs", "cases"):
            selector = pafs.FileSelector(f"{self.root}/{table}", allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                base = info.path.rsplit("/", 1)[-1]
                if info.type == pafs.FileType.Directory and base.startswith("run_id="):
                    ids.add(base.removeprefix("run_id="))
        return sorted(ids)

    def known_runs(self, run_id: str | None = None) -> list[str]:
        """`run_ids()`, refusing an output with no runs, or a `run_id` it does not hold, with
        a one-line `ReportError` (what `report`, `--html` and `diff` say to a wrong path)."""
        known = self.run_ids()
        if not known:
            raise ReportError(f"{self.output}: no reports here (expected runs/ and cases/ "
                              "folders)")
        if run_id is not None and run_id not in known:
            raise ReportError(f"{self.output}: no run {run_id!r}; runs are {known}")
        return known

    def has_files(self, table: str) -> bool:
        return bool(self._parquet_files(f"{self.root}/{table}", recursive=True, limit=1))

    def files(self, table: str, run_id: str | None = None) -> list[str]:
        """The readable Parquet files of `table` (of one run, or of all), in path order.

        Each file's footer is read once per `Store`: a file that is truncated, not Parquet,
        or lacks the table's key columns or has one of another type is skipped with a
        warning and listed in `unreadable`.
        """
        if run_id is None:
            folder, recursive = f"{self.root}/{table}", True
        else:
            folder, recursive = self.folder(table, run_id), False
        found = sorted(self._parquet_files(folder, recursive=recursive))
        return [path for path in found if self._readable(table, path)]

    @property
    def unreadable(self) -> list[Unreadable]:
        """Every file skipped so far, in path order."""
        return [Unreadable(p, why) for p, why in sorted(self._checked.items()) if why]

    def _readable(self, table: str, path: str) -> bool:
        if path not in self._checked:
            why = self._problem(table, path)
            self._checked[path] = None
            if why:
                self._skip(path, why)
        return self._checked[path] is None

    def _skip(self, path: str, why: str) -> None:
        if self._checked.get(path):
            return  # already warned
        self._checked[path] = why
        log.warning(Unreadable(path, why).line())

    def _problem(self, table: str, path: str) -> str | None:
        """Why the file at `path` cannot be read as part of `table`, or None."""
        try:
            with self.fs.open_input_file(path) as handle:
                schema = pq.ParquetFile(handle).schema_arrow
        except (OSError, pa.ArrowException) as exc:
            return f"not a readable Parquet file ({one_line(exc, 160)})"
        missing = [c for c in KEY_COLUMNS[table] if c not in schema.names]
        if missing:
            return f"not a {table} file: no column {', '.join(missing)}"
        if "run_id" in schema.names:
            return "not a report file: it has a run_id column (the run id is the folder name)"
        expected = SCHEMAS[table]
        for name in schema.names:
            if name in expected.names and not schema.field(name).type.equals(
                    expected.field(name).type):
                return (f"not a {table} file: column {name} is {schema.field(name).type}, "
                        f"expected {expected.field(name).type}")
        return None

    def _parquet_files(self, folder: str, recursive: bool = False,
                       limit: int | None = None) -> list[str]:
        selector = pafs.FileSelector(folder, recursive=recursive, allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            base = info.path.rsplit("/", 1)[-1]
            if info.type == pafs.FileType.File and base.endswith(".parquet") and \
                    not base.startswith("."):
                found.append(info.path)
                if limit and len(found) >= limit:
                    break
        return found


def _case_id(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")


def _replace_local(path: str, payload: bytes) -> None:
    """Write a temporary sibling, then rename it over `path`: readers see all or nothing."""
    folder, name = path.rsplit("/", 1)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as out:
            out.write(payload)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _safe_name(case_id: str) -> str:
    if not is_run_id(case_id):
        raise ReportError(f"case id {case_id!r} is not a safe file name")
    return case_id
