"""Sources of cases: each `fleet:` entry of a manifest names one, and its module turns the
entry into cases (`expand(entry, context) -> list[CaseSpec]`, a `spec.CaseSource`).

A source whose cases need a step in the worker before loading (a registry's model version is
downloaded there) also has `fetch(spec) -> CaseSpec`, returning the case with a local model.
Modules are imported only when a manifest uses them, so an audit without a registry never
imports its client.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from audit.spec import CaseSource, CaseSpec

__all__ = ["SOURCES", "FetchError", "fetch", "get_source", "origin"]

#: source name (a `fleet:` entry's kind) -> its module
SOURCES: dict[str, str] = {
    "glob": "audit.sources.glob",
    "mlflow": "audit.sources.mlflow",
}


class FetchError(RuntimeError):
    """A case's model could not be fetched from its source; one line naming the version."""


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
