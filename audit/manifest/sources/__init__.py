"""Sources of cases: each `fleet:` entry of a manifest names one, and its module turns the
entry into cases (`expand(entry, context) -> list[CaseSpec]`, a `CaseSource`).

A source whose cases need a step in the worker before loading (a registry's model version is
downloaded there) also has `fetch(spec) -> CaseSpec`, returning the case with a local model.
Modules are imported only when a manifest uses them, so an audit without a registry never
imports its client.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from audit.errors import FetchError
from audit.manifest.case import CaseSpec

__all__ = ["SOURCES", "CaseSource", "FetchError", "SourceContext", "fetch", "get_source",
           "origin"]


@dataclass(frozen=True)
class SourceContext:
    """What a source needs from the manifest to turn one `fleet:` entry into cases: plain
    settings and one call, so sources never import the manifest schema."""

    where: str  # the entry's path in the manifest, e.g. fleet[2], for messages
    base_dir: str  # relative locations in the entry are relative to this
    #: (entry, name, model, data, **update) -> the case with the manifest's defaults and its id
    case: Callable[..., CaseSpec]


class CaseSource(Protocol):
    """A source of cases: one `fleet:` entry in, its cases out (sorted, stable ids). Bad
    input of one case (or of the whole entry, e.g. its registry is down) is a case with
    `error` set, never a raise, except a manifest mistake (`ManifestError`)."""

    def __call__(self, entry: Any, context: SourceContext) -> list[CaseSpec]: ...

#: source name (a `fleet:` entry's kind) -> its module, imported by name when a manifest uses
#: it: the registry source lives with the rest of the MLflow code (`audit.mlflow`), so nothing
#: in `manifest` imports MLflow's layer
SOURCES: dict[str, str] = {
    "glob": "audit.manifest.sources.glob",
    "mlflow": "audit.mlflow.source",
}


def _module(name: str) -> Any:
    if name not in SOURCES:
        close = difflib.get_close_matches(name, SOURCES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"valid sources are {sorted(SOURCES)}"
        raise KeyError(f"unknown case source {name!r}; {hint}")
    return importlib.import_module(SOURCES[name])


def get_source(name: str) -> CaseSource:
    """The expansion function of source `name`."""
    return _module(name).expand


def fetch(spec: CaseSpec) -> CaseSpec:
    """The case ready to load: a registry's model version downloaded (cached), any other case
    as is. Raises `FetchError` with one line when the case cannot be loaded at all."""
    if spec.error:
        raise FetchError(spec.error)
    if spec.registry is None:
        return spec
    return _module(spec.registry.registry).fetch(spec)


def origin(spec: CaseSpec) -> dict[str, Any] | None:
    """What the report records of where a registry case came from (the registry, model,
    version, run, and the source of each setting); None for a case from files."""
    if spec.registry is None:
        return None
    return spec.registry.model_dump(mode="json", exclude={"cache"})
