"""The Jobs API client: Ray's token, a connection checked by one authenticated request, and
retries of the errors that go away by themselves (a head that is starting, HTTP 5xx). Every
failure becomes a one-line `JobsError` that says what happened and what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import JobsError, RetriesExhausted
from audit.util.text import one_line

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

DEFAULT_SUBMIT_WAIT_S = 60.0  # how long `audit submit` retries a cluster that is starting
DEFAULT_WAIT_S = 10.0  # the same for status, logs and stop


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Backoff:
    """How long to retry a transient Jobs API error (a head that is starting, HTTP 5xx, "try
    again later"): waits of `first_s`, doubling up to `max_s`, for at most `wait_s` in all."""

    wait_s: float = DEFAULT_WAIT_S
    first_s: float = 0.5
    max_s: float = 8.0


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster's dashboard (Jobs API) listens, the token to present there, and how
    long to retry while the cluster cannot answer yet."""

    address: str
    token: str | None = None
    token_source: str | None = None  # where the token came from, for error messages
    verify: bool | str = True
    backoff: Backoff = field(default_factory=Backoff)


# ---------------------------------------------------------------- token and client


def find_token(env: Mapping[str, str] | None = None, home: Path | None = None) -> tuple[
    str | None, str | None
]:
    """Ray's token and where it came from, looked up in Ray's own order.

    `RAY_AUTH_TOKEN`, then the file named by `RAY_AUTH_TOKEN_PATH`, then `~/.ray/auth_token`.
    Ray sends it only when `RAY_AUTH_MODE=token` is set in the client too; we always send it
    when found, so a laptop needs the token and nothing else.
    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    token = env.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "RAY_AUTH_TOKEN"
    token_path = env.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if token_path:
        try:
            token = Path(token_path).expanduser().read_text().strip()
        except OSError as exc:
            raise JobsError(
                f"RAY_AUTH_TOKEN_PATH={token_path}: cannot read the token file ({exc.strerror})"
            ) from None
        if not token:
            raise JobsError(f"RAY_AUTH_TOKEN_PATH={token_path}: the token file is empty")
        return token, f"RAY_AUTH_TOKEN_PATH={token_path}"
    default = home / ".ray" / "auth_token"
    if default.is_file():
        token = default.read_text().strip()
        if token:
            return token, str(default)
    return None, None


def connect(config: ClusterConfig,
            sleep: Callable[[float], None] = time.sleep) -> JobSubmissionClient:
    """A Jobs API client for the cluster, checked by one authenticated request.

    Transient errors (nothing listens yet, HTTP 5xx, "try again later") are retried with
    `config.backoff`, here and in every call of the returned client (`RetryingClient`).
    """
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}

    def make() -> JobSubmissionClient:
        with _explicit_address():
            return JobSubmissionClient(config.address, headers=headers, verify=config.verify)

    waited = ""
    try:
        try:
            client = retry(make, config.backoff, sleep)
        except RetriesExhausted as gave_up:
            waited = f" after {gave_up.tries} tries in {gave_up.waited_s:.0f}s"
            raise gave_up.last from None
    except AuthenticationError as exc:
        raise _auth_error(config, exc) from None
    except (ConnectionError, OSError) as exc:
        raise JobsError(
            f"no Ray cluster answers at {config.address}{waited} ({one_line(exc)}); "
            "check --address (the head's dashboard, port 8265 by default)"
        ) from None
    except (RuntimeError, ValueError) as exc:
        raise JobsError(f"{config.address}{waited}: {one_line(exc)}") from None
    return RetryingClient(client, config.backoff, sleep)  # type: ignore[return-value]


# ---------------------------------------------------------------- transient errors


_STATUS = re.compile(r"(?:status code |^)(\d{3})\b")


def is_transient(exc: BaseException) -> bool:
    """Whether a Jobs API error may go away by itself: nothing listens yet (a head that is
    starting), an HTTP 5xx, or the server saying to try again later. A refused token, a
    missing job or a bad request never do."""
    from ray.exceptions import AuthenticationError

    if isinstance(exc, AuthenticationError):
        return False
    if isinstance(exc, ConnectionError) or type(exc).__name__ in ("ConnectionError",
                                                                    "ConnectTimeout"):
        return True  # builtin (Ray's "Failed to connect"), requests' and urllib3's
    text = one_line(exc, 10_000)
    if "try again later" in text.lower():
        return True
    match = _STATUS.search(text)
    return bool(match) and match.group(1).startswith("5")


def retry(fn: Callable[[], Any], backoff: Backoff,
          sleep: Callable[[float], None] = time.sleep) -> Any:
    """`fn()`, retried with exponential backoff while it raises a transient error; the first
    other error is raised at once, and `RetriesExhausted` once `backoff.wait_s` would pass."""
    start, delay, tries = time.monotonic(), backoff.first_s, 1
    while True:
        try:
            return fn()
        except Exception as exc:
            waited = time.monotonic() - start
            if not is_transient(exc):
                raise
            if waited + delay > backoff.wait_s:
                if tries == 1:
                    raise
                raise RetriesExhausted(exc, tries, waited) from None
            sleep(delay)
            tries += 1
            delay = min(delay * 2, backoff.max_s)


class RetryingClient:
    """A `JobSubmissionClient` whose request methods retry transient errors (`retry`).

    A submit retried after a 5xx that the server had in fact accepted finds its job "already
    exists", which `submit` reports as the job it is. The log stream is not wrapped:
    `follow_logs` reconnects by itself.
    """

    RETRIED = frozenset({"submit_job", "get_job_info", "list_jobs", "stop_job",
                         "get_job_logs", "get_job_status", "delete_job"})

    def __init__(self, client: Any, backoff: Backoff,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.backoff, self.sleep = client, backoff, sleep

    def __getattr__(self, name: str) -> Any:
        if name in ("client", "backoff", "sleep"):  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        attr = getattr(self.client, name)
        if name not in self.RETRIED:
            return attr

        def retried(*args: Any, **kwargs: Any) -> Any:
            return retry(lambda: attr(*args, **kwargs), self.backoff, self.sleep)

        return retried


@contextlib.contextmanager
def _explicit_address() -> Iterator[None]:
    """Ray lets RAY_ADDRESS override an explicit address; here the caller's choice wins."""
    saved = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
             if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _auth_error(config: ClusterConfig, exc: Exception) -> JobsError:
    refused = "403" in str(exc) or "Forbidden" in str(exc) or "invalid" in str(exc).lower()
    if config.token and refused:
        return JobsError(
            f"{config.address} refused the token from {config.token_source}; set RAY_AUTH_TOKEN "
            "(or RAY_AUTH_TOKEN_PATH) to the cluster's token, e.g. `ray get-auth-token` on the head"
        )
    return JobsError(
        f"{config.address} requires a token and none was found; set RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token to the cluster's token "
        "(`ray get-auth-token` on the head)"
    )


def call(action: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one Jobs API call, turning Ray's exceptions into one-line `JobsError`s."""
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args)
    except RetriesExhausted as gave_up:
        raise JobsError(f"{action}: the cluster still failed after {gave_up.tries} tries in "
                        f"{gave_up.waited_s:.0f}s ({one_line(gave_up.last)}); is the head up? "
                        "--wait sets how long to retry") from None
    except AuthenticationError:
        raise JobsError(
            f"{action}: the cluster refused the token; set RAY_AUTH_TOKEN to the cluster's token"
        ) from None
    except (ConnectionError, OSError) as exc:
        raise JobsError(f"{action}: the cluster did not answer ({one_line(exc)})") from None
    except RuntimeError as exc:
        if "does not exist" in str(exc) or "404" in str(exc):
            raise JobsError(f"{action}: no such job on this cluster") from None
        raise JobsError(f"{action}: {one_line(exc)}") from None


def find_job(client: JobSubmissionClient, sid: str) -> Any | None:
    """The job with submission id `sid`, or None when the cluster has none."""
    try:
        return call(f"look up {sid}", client.get_job_info, sid)
    except JobsError as exc:
        if "no such job" in str(exc):
            return None
        raise
