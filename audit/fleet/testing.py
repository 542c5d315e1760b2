"""TESTING ONLY: failures injected into workers, to test the scheduler and the report.

Never part of the production options (`FleetOptions`) and never exposed by the CLI: tests pass
`faults={case name: Injection}` to `run_fleet`/`run_manifest` as a keyword argument.
"""

from __future__ import annotations

import os
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.reports import Store

__all__ = ["Faults", "Injection", "maybe_inject"]


class Injection(BaseModel):
    """Make the named case fail inside its worker.

    `exit` kills the worker process (`os._exit`), `raise` raises in the worker, `sleep` holds
    the worker for `seconds`, `exit_while_writing` kills the worker in the middle of writing
    the case's report (after its first file, before its `cases` row), `rendezvous` holds the
    worker until `count` cases have reached the same `folder` (at most `seconds`): the cases
    of one rendezvous run at the same time, on as many workers. `attempts` = n fires on the
    first n attempts only (0: always).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["exit", "raise", "sleep", "exit_while_writing", "rendezvous"]
    attempts: int = Field(0, ge=0)
    seconds: float = Field(0.0, ge=0)
    folder: str | None = None
    count: int = Field(2, ge=1)


Faults = dict[str, Injection]


def fires(injection: Injection | None, attempt: int) -> bool:
    """Whether `injection` applies to this attempt."""
    return injection is not None and not (injection.attempts and attempt > injection.attempts)


def maybe_inject(injection: Injection | None, attempt: int) -> None:
    """Before the case runs: exit, raise or sleep as injected."""
    if injection is None or not fires(injection, attempt):
        return
    if injection.kind == "exit":
        os._exit(17)
    if injection.kind == "raise":
        raise RuntimeError("injected failure")
    if injection.kind == "sleep":
        time.sleep(injection.seconds)
    if injection.kind == "rendezvous" and injection.folder:
        os.makedirs(injection.folder, exist_ok=True)
        open(os.path.join(injection.folder, f"{os.getpid()}-{time.time_ns()}"), "w").close()
        deadline = time.monotonic() + injection.seconds
        while len(os.listdir(injection.folder)) < injection.count and \
                time.monotonic() < deadline:
            time.sleep(0.02)


def dying_store(output: str, files_before_death: int = 1) -> object:
    """A report `Store` whose process dies while writing a case: after `files_before_death`
    whole files, it writes half of the next file's temporary sibling and `os._exit`s, as a
    worker killed (OOM, node lost) in the middle of writing does."""

    class DyingStore(Store):
        left = files_before_death

        def _write(self, path: str, table: object) -> None:
            if DyingStore.left <= 0 and self.local:
                folder, name = path.rsplit("/", 1)
                os.makedirs(folder, exist_ok=True)
                with open(f"{folder}/.{name}.dying.tmp", "wb") as half:
                    half.write(b"PAR1" + b"\0" * 64)  # a torn write: no footer
                os._exit(17)
            if DyingStore.left <= 0:
                os._exit(17)
            DyingStore.left -= 1
            super()._write(path, table)  # type: ignore[arg-type]

    return DyingStore(output)
