"""The scheduler: maps (actor, item) -> status on a fixed number of actor seats, with a bounded
window in flight, retries on fresh actors, time limits and actor recycling.

It knows nothing about probes, cases or reports (Ray's own `ActorPool` is the model): items and
statuses are opaque, and the caller says how to make, warm, use and retire an actor.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from audit.fleet.types import FleetError
from audit.util.text import one_line

__all__ = ["MAX_START_FAILURES", "WARMUP_TIMEOUT_S", "ActorPool", "Outcome", "reason"]

WARMUP_TIMEOUT_S = 600.0  # an actor that cannot start (import TF) within this is given up
MAX_START_FAILURES = 3  # consecutive actor start failures before the run is abandoned
RETIRE_TIMEOUT_S = 10.0  # how long a retiring actor gets to clean up before it is killed


@dataclass
class _Slot:
    """One actor seat: the actor, whether it has started, and how many items it ran."""

    actor: Any = None
    warm_ref: Any = None
    info: Any = None  # what the actor's warm-up returned (where it runs)
    ready: bool = False
    uses: int = 0
    failures: int = 0
    warm_started: float = 0.0


@dataclass
class _Flight:
    slot: _Slot
    item: Any
    attempt: int
    started: float
    deadline: float
    where: Any = None  # the slot's actor info, for rows the driver writes


@dataclass
class Outcome:
    """What became of one item: `ok` (the actor's status), `error`, `timeout`, or `deferred`
    (never started: its expected cost would end past the deadline)."""

    item: Any
    kind: Literal["ok", "error", "timeout", "deferred"]
    attempt: int
    started: float
    status: dict[str, Any] | None = None
    reason: str | None = None
    where: Any = None


class ActorPool:
    """Schedules items on a fixed number of actor seats: one item per actor at a time, a
    bounded window in flight, retries on fresh actors, time limits, actor recycling.

    `make_actor()` returns a started actor handle, `warm(actor)` a ref that resolves when it is
    ready, `submit(actor, item, attempt)` a ref of the item's status, `time_limit(item)` its
    limit in seconds, and `retire(actor)` (optional) a ref that resolves once a healthy actor
    has cleaned up before it is killed (recycling and the end of the run; an actor that died or
    ran over its time limit is killed without it). With a `deadline` (epoch seconds), an item
    starts only while `now + cost(item)` is at most the deadline; the others end `deferred`
    without starting (an item already running finishes, within its own time limit). The pool
    never looks inside an item or a status.
    """

    def __init__(self, size: int, make_actor: Callable[[], Any], warm: Callable[[Any], Any],
                 submit: Callable[[Any, Any, int], Any], time_limit: Callable[[Any], float],
                 max_attempts: int, max_uses: int, poll_s: float = 0.5,
                 retire: Callable[[Any], Any] | None = None, deadline: float | None = None,
                 cost: Callable[[Any], float] | None = None) -> None:
        self.slots = [_Slot() for _ in range(size)]
        self.make_actor, self.warm, self.submit = make_actor, warm, submit
        self.time_limit, self.max_attempts, self.max_uses = time_limit, max_attempts, max_uses
        self.poll_s, self.retire = poll_s, retire
        self.deadline, self.cost = deadline, cost or (lambda item: 0.0)
        self.deferred: list[Outcome] = []
        self.pending: deque[tuple[Any, int]] = deque()
        self.flights: dict[Any, _Flight] = {}
        self.warming: dict[Any, _Slot] = {}
        self.stop_requested = threading.Event()

    def start(self, n: int | None = None) -> None:
        """Start `n` actors (default: every seat) now, before any item is known: they warm up
        (import TensorFlow) while the caller is still preparing the items."""
        for slot in self.slots[:len(self.slots) if n is None else n]:
            if slot.actor is None:
                self._start(slot)

    def trim(self, n: int) -> None:
        """Keep at most `n` seats (at least one): fewer items than `start` expected. The
        actors of the seats given up are retired (started ones) and killed."""
        keep = max(1, n)
        extra = self.slots[keep:]
        self._retire([s for s in extra if s.actor is not None and s.ready])
        for slot in extra:
            self._kill(slot)
        self.slots = self.slots[:keep]

    def run(self, items: Iterator[Any]) -> Iterator[Outcome]:
        """Yield each item's final outcome as it happens (retries are internal)."""
        self.pending.extend((item, 1) for item in items)
        try:
            while (self.pending or self.flights) and not self.stop_requested.is_set():
                self._fill()
                yield from self.deferred
                self.deferred.clear()
                yield from self._step()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Retire the idle actors (they clean up), kill every actor; resources go back."""
        import ray

        busy = {id(f.slot) for f in self.flights.values()}
        idle = [s for s in self.slots if s.actor is not None and s.ready and id(s) not in busy]
        self._retire(idle)
        dying = [*self.flights, *self.warming]  # they resolve (with an error) once it is gone
        for slot in self.slots:
            self._kill(slot)
        if dying:  # so that what they leave behind can be told from a live worker's
            with contextlib.suppress(Exception):
                ray.wait(dying, num_returns=len(dying), timeout=RETIRE_TIMEOUT_S)
        self.flights.clear()
        self.warming.clear()

    def _fill(self) -> None:
        """Defer the items that can no longer finish by the deadline; start actors for empty
        seats (while work remains); give ready seats an item."""
        self._defer()
        busy = {id(f.slot) for f in self.flights.values()}
        for slot in self.slots:
            if not self.pending:
                break
            if slot.actor is None:
                spare = sum(1 for s in self.slots if s.actor is not None and id(s) not in busy)
                if spare >= len(self.pending):
                    continue  # idle or starting actors will take what is left (a retry)
                self._start(slot)
            elif slot.ready and id(slot) not in busy:
                item, attempt = self.pending.popleft()
                now = time.monotonic()
                ref = self.submit(slot.actor, item, attempt)
                self.flights[ref] = _Flight(slot, item, attempt, time.time(),
                                            now + self.time_limit(item), slot.info)
                busy.add(id(slot))

    def _defer(self) -> None:
        """Take out of `pending` every item whose expected cost ends past the deadline (time
        only grows, so it never would start in time)."""
        if self.deadline is None or not self.pending:
            return
        now, kept = time.time(), deque()
        for item, attempt in self.pending:
            if now + self.cost(item) > self.deadline:
                self.deferred.append(Outcome(item, "deferred", attempt, now, reason=(
                    f"expected {self.cost(item):.0f}s, {max(0.0, self.deadline - now):.0f}s "
                    "were left before the deadline")))
            else:
                kept.append((item, attempt))
        self.pending = kept

    def _start(self, slot: _Slot) -> None:
        slot.actor = self.make_actor()
        slot.warm_ref = self.warm(slot.actor)
        slot.ready, slot.warm_started = False, time.monotonic()
        self.warming[slot.warm_ref] = slot

    def _step(self) -> Iterator[Outcome]:
        import ray

        refs = [*self.flights, *self.warming]
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=self.poll_s, fetch_local=True)
        for ref in ready:
            if ref in self.warming:
                self._warmed(ref)
            else:
                yield from self._finished(ref)
        yield from self._expire()

    def _warmed(self, ref: Any) -> None:
        import ray

        slot = self.warming.pop(ref)
        try:
            slot.info = ray.get(ref)
        except ray.exceptions.RayError as exc:
            slot.failures += 1
            self._kill(slot)
            if slot.failures >= MAX_START_FAILURES:
                raise FleetError(f"workers cannot start: {reason(exc)}") from None
            return
        slot.ready, slot.failures = True, 0

    def _finished(self, ref: Any) -> Iterator[Outcome]:
        import ray

        flight = self.flights.pop(ref)
        slot = flight.slot
        try:
            status = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the actor died, or the item raised in it
            why = reason(exc)
            if raised_by_the_item(exc):  # another attempt would raise it again: no retry
                slot.uses += 1
                yield Outcome(flight.item, "error", flight.attempt, flight.started,
                              reason=f"the audit raised {why}", where=flight.where)
                return
            self._kill(slot)
            if flight.attempt < self.max_attempts:
                self.pending.appendleft((flight.item, flight.attempt + 1))
                return
            yield Outcome(flight.item, "error", flight.attempt, flight.started, reason=(
                f"worker failed on all {flight.attempt} attempts; last: {why}"),
                where=flight.where)
            return
        slot.uses += 1
        if slot.uses >= self.max_uses:  # TF never returns memory to the OS: recycle
            self._retire([slot])
            self._kill(slot)
        yield Outcome(flight.item, "ok", flight.attempt, flight.started, status=status)

    def _expire(self) -> Iterator[Outcome]:
        import ray

        now = time.monotonic()
        for ref, flight in list(self.flights.items()):
            if now > flight.deadline:
                del self.flights[ref]
                self._kill(flight.slot)
                ray.wait([ref], timeout=10)  # the actor is gone: it can no longer write
                limit = self.time_limit(flight.item)
                yield Outcome(flight.item, "timeout", flight.attempt, flight.started,
                              reason=f"ran longer than its time limit of {limit:g}s; stopped",
                              where=flight.where)
        for ref, slot in list(self.warming.items()):
            if now - slot.warm_started > WARMUP_TIMEOUT_S:
                del self.warming[ref]
                self._kill(slot)
                raise FleetError(f"an actor did not start within {WARMUP_TIMEOUT_S:g}s; "
                                 "does the cluster have the resources a case asks for?")

    def _retire(self, slots: list[_Slot]) -> None:
        """Let healthy actors clean up (their temp folders) before they are killed."""
        import ray

        if self.retire is None or not slots:
            return
        refs = []
        for slot in slots:
            with contextlib.suppress(Exception):
                refs.append(self.retire(slot.actor))
        if refs:
            with contextlib.suppress(Exception):
                ray.wait(refs, num_returns=len(refs), timeout=RETIRE_TIMEOUT_S)

    def _kill(self, slot: _Slot) -> None:
        import ray

        if slot.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
        if slot.warm_ref is not None:
            self.warming.pop(slot.warm_ref, None)
        slot.actor, slot.warm_ref, slot.ready, slot.uses, slot.info = None, None, False, 0, None


def raised_by_the_item(exc: BaseException) -> bool:
    """An exception the item's own code raised in a live actor (deterministic: the same
    item raises it again), not the actor's death; a `MemoryError` may pass on a fresh one."""
    import ray

    cause = getattr(exc, "cause", None)
    return (isinstance(exc, ray.exceptions.RayTaskError)
            and not isinstance(exc, ray.exceptions.RayActorError)
            and cause is not None and not isinstance(cause, MemoryError))


def reason(exc: BaseException) -> str:
    """One line for a Ray error: the actor's death, or the exception the item raised."""
    import ray


    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        text = f"{type(cause).__name__}: {one_line(cause)}"
    elif isinstance(exc, ray.exceptions.RayActorError):
        text = "worker process died"
        detail = one_line(exc, limit=10_000)
        for marker in ("exit code", "exit_code", "Exit code"):
            pos = detail.find(marker)
            if pos >= 0:
                text += f" ({detail[pos:pos + 40].split('.')[0]})"
                break
    else:
        text = f"{type(exc).__name__}: {one_line(exc)}"
    return one_line(text)
