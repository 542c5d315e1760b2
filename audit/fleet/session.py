"""The Ray session of a run: an embedded local Ray on loopback, or a cluster; and the signals
(SIGTERM from `ray job stop`, SIGINT) that stop a run cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

from audit.fleet.types import FleetError, FleetOptions
from audit.util.text import one_line

__all__ = ["loopback_only", "ray_session", "stop_on_signals"]


@contextlib.contextmanager
def ray_session(options: FleetOptions) -> Iterator[str | None]:
    """Use an initialized Ray as is; else connect to `address` or start an embedded one."""
    if not options.address or _is_loopback(options.address):
        loopback_only()  # before Ray looks up this machine's address
    import ray

    if ray.is_initialized():
        yield options.address
        return
    if options.address:
        _check_reachable(options.address)
    try:
        if options.address:
            ray.init(address=options.address, log_to_driver=options.worker_logs,
                     logging_level="ERROR")
        else:
            ray.init(address="local", include_dashboard=False, log_to_driver=options.worker_logs,
                     logging_level="ERROR")
    except ray.exceptions.AuthenticationError:
        raise FleetError(
            f"Ray at {options.address} requires a token and none was found; set RAY_AUTH_TOKEN "
            "(or RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) to the cluster's token") from None
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = options.address or "an embedded local Ray"
        hint = ("; the port answers but the cluster did not accept this client: is the token "
                "right (RAY_AUTH_TOKEN) and the address the head's GCS port (6379 by default)?"
                if options.address and "Failed to connect" in str(exc) else "")
        raise FleetError(f"cannot start on {where}: {one_line(exc, limit=200)}{hint}") from None
    try:
        yield options.address
    finally:
        ray.shutdown()


def loopback_only() -> None:
    """Keep a local Ray on 127.0.0.1 (by default it binds, and rewrites 127.0.0.1 to, this
    machine's network address). Ray reads the variable when first imported, so when it already
    is, its constant is set too."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


def _check_reachable(address: str) -> None:
    """Fail fast when nothing listens at `address` (ray.init would wait for minutes)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise FleetError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); "
                         "check --address or RAY_ADDRESS") from None


@contextlib.contextmanager
def stop_on_signals(enabled: bool) -> Iterator[threading.Event]:
    """An event set by SIGTERM (what `ray job stop` sends) or SIGINT, while the run lasts."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
