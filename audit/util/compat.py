"""Old import paths, kept for one release: each resolves to its module's new home, with a
`DeprecationWarning` naming it (the layout of 0.1 put 21 modules flat in `audit/`)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module path -> where it lives now (remove in the release after next)
MOVED: dict[str, str] = {
    "audit.case_ids": "audit.manifest.case",
    "audit.class_order": "audit.diagnose.class_order",
    "audit.classes": "audit.subject.classes",
    "audit.cli_render": "audit.cli.render",
    "audit.demo": "audit.cli.demo",
    "audit.diagnose.outcomes": "audit.diagnose.counterfactuals",
    "audit.faults.data": "audit.faults.dataset",
    "audit.inputs": "audit.subject.inputs",
    "audit.jobs_cli": "audit.cli.jobs",
    "audit.keras2": "audit.models.keras2",
    "audit.keras_vocab": "audit.models.vocab",
    "audit.locations": "audit.io.locations",
    "audit.manifest_hints": "audit.manifest.hints",
    "audit.model_files": "audit.models.load",
    "audit.probes.keys": "audit.evidence.keys",
    "audit.publish": "audit.mlflow.publish",
    "audit.results": "audit.evidence.results",
    "audit.sources": "audit.manifest.sources",
    "audit.sources.glob": "audit.manifest.sources.glob",
    "audit.sources.mlflow": "audit.mlflow.source",
    "audit.sources.mlflow_artifacts": "audit.mlflow.artifacts",
    "audit.sources.mlflow_client": "audit.mlflow.client",
    "audit.spec": "audit.manifest.schema",
    "audit.reports.schema": "audit.reports.columns",
    "audit.jobs.client": "audit.jobs.connection",
    "audit.tables": "audit.io.tables",
    "audit.text": "audit.util.text",
    "audit.training_config": "audit.subject.training_config",
    "audit.zoo.data": "audit.zoo.datasets",
    "audit.zoo.keras2": "audit.zoo.keras2_saved",
    "audit.zoo.pool": "audit.zoo.processes",
}


class _MovedLoader(importlib.abc.Loader):
    """Hands back the module at its new path; Python files it under the old name too."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{self.old} moved to {self.new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:  # already executed at its new path
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Asked last (after the real files), so it only answers for paths that no longer exist."""

    def find_spec(self, name: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(name)
        if new is None:
            return None
        is_package = new.endswith("sources")
        return importlib.machinery.ModuleSpec(name, _MovedLoader(name, new),
                                              is_package=is_package)


def install() -> None:
    """Serve the old paths (idempotent; `audit/__init__.py` calls it)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
