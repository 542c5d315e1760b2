"""A registry case's model on the worker: the version's artifact downloaded through MLflow's
artifact API (so S3, GCS, Azure and the MLflow proxy all work), cached by version, and the
model inside it found.

A version's files are immutable in MLflow, so the cache folder
`<cache>/<registry host>/<model>/<version>/` is complete once it exists: downloads go to a
temporary sibling renamed into place, so concurrent workers never see half a download.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from audit.errors import FetchError
from audit.manifest.case import CaseSpec, RegistryVersion, slug
from audit.mlflow.client import describe, quick_retries, tracking_uri

__all__ = ["cache_folder", "fetch", "find_model"]

#: what a flavor's data folder may hold, in the order looked for: the Keras 3 file, a Keras 2
#: HDF5 file, then SavedModels (TF <= 2.15 `data/model/` with keras_metadata.pb, or the
#: folder itself)
MODEL_FILES = ("model.keras", "model.h5", "model")
FLAVORS = ("keras", "tensorflow")


def cache_folder(version: RegistryVersion) -> Path:
    """Where this version's artifacts are cached."""
    parts = urlsplit(version.uri)
    where = slug(f"{parts.hostname or parts.scheme}-{parts.port or ''}{parts.path}", 80)
    return Path(version.cache) / where / slug(version.model_name, 80) / slug(version.version)


def fetch(spec: CaseSpec) -> CaseSpec:
    """The case with `model` pointing at the version's model in the local cache. Raises
    `FetchError` (one line naming the version) when it cannot be downloaded or holds no model
    Flatline can load."""
    version = spec.registry
    assert version is not None
    folder = cache_folder(version)
    if not folder.is_dir():
        _download(version, folder)
    return spec.model_copy(update={"model": str(find_model(folder, version))})


def _download(version: RegistryVersion, folder: Path) -> None:
    import mlflow.artifacts

    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        with quick_retries(), tracking_uri(version.uri):
            # a runs:/<id>/<path> source lands in <partial>/<path>; models:/m-<id> in <partial>
            downloaded = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=version.artifact, dst_path=str(partial), tracking_uri=version.uri,
                registry_uri=version.uri))
        if not downloaded.is_dir() or not any(downloaded.iterdir()):
            raise FileNotFoundError("the artifact holds no files")
        try:
            os.replace(downloaded, folder)
        except OSError:  # another worker finished first: keep its copy
            if not folder.is_dir():
                raise
    except Exception as exc:  # any download failure is this case's one line
        raise FetchError(
            f"model {version.model_name!r} version {version.version}: cannot download its "
            f"artifact {version.artifact} from {version.uri}: {describe(exc)}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def find_model(folder: Path, version: RegistryVersion) -> Path:
    """The model file or SavedModel folder inside a downloaded version, read off its `MLmodel`
    (the `keras` flavor's `.keras` file; the `tensorflow` flavor's `.keras` file on
    TF >= 2.16, or its TF <= 2.15 `data/model/` SavedModel)."""
    what = f"model {version.model_name!r} version {version.version}"
    try:
        flavors = (yaml.safe_load((folder / "MLmodel").read_text()) or {}).get("flavors", {})
    except (OSError, yaml.YAMLError) as exc:
        raise FetchError(f"{what}: no readable MLmodel in its artifact ({exc})") from None
    for flavor in FLAVORS:
        if flavor not in flavors:
            continue
        data = folder / str((flavors[flavor] or {}).get("data") or "data")
        for name in MODEL_FILES:
            if (data / name).exists():
                return data / name
        if (data / "saved_model.pb").exists():
            return data
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())[:12]
    raise FetchError(f"{what}: no Keras or TensorFlow model in its artifact; flavors "
                     f"{sorted(flavors)}, files {found}; expected the keras or tensorflow "
                     "flavor")

