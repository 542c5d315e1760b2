"""Flatline's one error family: every exception it defines derives from `FlatlineError`.

Each keeps the builtin base its callers already catch (`ValueError`, `OSError`, ...). The
CLI maps the family to one line and an exit code in one place (`audit.cli.render.fail`).
Messages follow Keras' convention: name the thing, say what was expected, then
`Received: ...`.
"""

from __future__ import annotations


class FlatlineError(Exception):
    """Anything Flatline raises on purpose; its message is one line for the user."""


class LocationError(FlatlineError, OSError):
    """A location cannot be reached or is not there; the message is one line naming it."""


class TableError(FlatlineError, ValueError):
    """A dataset cannot be read; the message is one line naming the file."""


class ModelError(FlatlineError, ValueError):
    """A model cannot be loaded; the message is one line naming what and where."""


class Keras2Error(FlatlineError, ValueError):
    """`tf_keras` could not load the artifact; the message is one line."""


class NotConvertible(FlatlineError, ValueError):
    """The Keras 2 model has no faithful Keras 3 rebuild; the message names the layer."""


class ClassesError(FlatlineError, ValueError):
    """`classes:` does not fit the data or the model; one line naming the case."""


class SubjectError(FlatlineError, ValueError):
    """A case's model or data cannot be used; the message is one line naming what and where."""


class ManifestError(FlatlineError, ValueError):
    """A manifest is wrong; the message is one line naming the key, what was expected and got."""


class ManifestFilesMissing(ManifestError, FileNotFoundError):
    """A manifest names files that are not there (e.g. a fleet glob with no match here)."""


class FetchError(FlatlineError, RuntimeError):
    """A case's model could not be fetched from its source; one line naming the version."""


class NotApplicable(FlatlineError):
    """Raised by a probe that cannot say anything about this subject (e.g. SavedModel retrain)."""


class ReportError(FlatlineError, ValueError):
    """The output cannot be used (bad location, no reports there, bad SQL); one line."""


class FleetError(FlatlineError, RuntimeError):
    """The run could not start or go on (no cluster, auth refused, no resources); one line."""


class JobsError(FlatlineError, RuntimeError):
    """A cluster operation failed; the message is one line naming what and how to fix it.

    `exit_code` is what the CLI exits with: 2 when the command could not run at all
    (no cluster, token refused, bad manifest, unknown run).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RetriesExhausted(FlatlineError):
    """A transient error that did not go away within the backoff's wait."""

    def __init__(self, last: BaseException, tries: int, waited_s: float) -> None:
        super().__init__(str(last))
        self.last, self.tries, self.waited_s = last, tries, waited_s
