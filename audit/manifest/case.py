"""The plain case types (`CaseSpec` and what it holds) and the case id.

Plain data validated by pydantic, no I/O except hashing files for ids: everything below the
manifest (sources, the subject, the engine) takes a `CaseSpec` and needs nothing else of the
manifest. A stable case id hashes what defines a case, so an unchanged case keeps its id
across runs (`--resume` and `audit diff` rely on it). Files are hashed by content; a
registry's model version by the registry's own identity. A file's digest is computed once per
change of the file (`audit.io.digests`: a persistent cache keyed by size, mtime and inode, or
an object store's ETag), so an unchanged fleet is not read again."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from audit.evidence.keys import NAMESPACES
from audit.io.digests import content_digest

__all__ = ["ALL_PROBES", "Budget", "CaseSpec", "Classes", "DataFormat", "MlflowPublish",
           "RegistryVersion",
           "Resources", "Task", "Training", "case_id", "content_digest", "no_credentials",
           "slug"]

Task = Literal["regression", "binary", "multiclass"]
#: read off the probes' key namespaces (a leaf module the probes' own imports allow here), which
#: tests/test_probe_keys.py holds equal to the probe registry, name for name
ALL_PROBES: tuple[str, ...] = tuple(NAMESPACES)


def _no_booleans(value: Any) -> Any:
    """YAML reads yes/no/on/off/true/false as booleans: class names like those need quotes."""
    if isinstance(value, (list, tuple)) and any(isinstance(c, bool) for c in value):
        raise ValueError(f"YAML read {list(value)} as booleans; quote class names such as "
                         "'yes', 'no', 'true', 'false', 'on', 'off'")
    return value


def _distinct_classes(value: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """`classes:` names each class once (2 and '2' are the same class: labels match as text)."""
    seen: dict[str, str | int] = {}
    for c in value:
        if str(c) in seen:
            raise ValueError(f"{c!r} is listed twice; received {list(value)}")
        seen[str(c)] = c
    return value


#: the model's class order: the label of output unit 0, 1, ... (strings or integers)
Classes = Annotated[tuple[str | int, ...], Field(min_length=2), BeforeValidator(_no_booleans),
                    AfterValidator(_distinct_classes)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Training(_Strict):
    """How the model was trained; unset fields come from the model's saved compile config."""

    epochs: int | None = Field(None, ge=1, description="epochs of the original training")
    batch_size: int | None = Field(None, ge=1)
    optimizer: str | None = Field(None, description="sgd, adam, rmsprop, adagrad, ...")
    learning_rate: float | None = Field(None, gt=0)
    loss: str | None = Field(None, description="a Keras loss name, e.g. mse")


class Budget(_Strict):
    """Limits of the retraining counterfactuals. Each trains as long as the original training
    did (its epochs x rows / batch, in optimizer steps), within `flops` for all of them."""

    epochs: int = Field(
        30, ge=1, description="epochs per counterfactual when the original's epochs are unknown"
    )
    flops: float = Field(
        1e11, gt=0, description="training FLOPs (6 x params x rows x epochs) of all counterfactuals"
    )
    max_seconds: float = Field(300.0, gt=0, description="wall-clock budget of the retrain probe")
    seeds: int = Field(3, ge=1, le=10, description="seeds per counterfactual")
    max_rows: int = Field(
        100_000, ge=20, description="rows sampled from a big table (seeded) for the audit"
    )


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class DataFormat(_Strict):
    """How to read a case's data when its name does not say (a folder or glob of shards
    without a TFRecord suffix, a `.gz` of another name): the format and, for TFRecord, the
    compression (default: by each file's suffix)."""

    type: Literal["tfrecord", "parquet", "csv", "npz"] = Field(
        description="tfrecord (tf.Example records), parquet, csv or npz")
    compression: Annotated[Literal["GZIP", "ZLIB", "NONE"] | None, BeforeValidator(_upper)] = \
        Field(None, description="TFRecord only: GZIP, ZLIB or NONE; default: by the suffix "
              "(.gz GZIP, .zlib ZLIB, else none)")


class Resources(_Strict):
    """Ray resources of one case's actor; fractions of a GPU are allowed."""

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    gpu_memory_mb: int | None = Field(
        None, gt=0, description="memory of one GPU; default: asked of nvidia-smi in the actor"
    )


class RegistryVersion(_Strict):
    """The model version a registry case audits: what the worker downloads (through the
    registry's own artifact API, cached by version) and what the report records. The URI holds
    no credentials (the manifest refuses them); those come from the registry client's own
    environment (e.g. MLFLOW_TRACKING_TOKEN)."""

    registry: str = Field(description="the source's name, e.g. mlflow")
    uri: str = Field(description="tracking/registry URI, without credentials")
    model_name: str
    version: str
    artifact: str = Field(description="the version's source, e.g. models:/m-<id>")
    alias: str | None = None
    run_id: str | None = Field(None, description="the run that logged the model")
    cache: str = Field("", description="local folder the artifacts are cached in, by version")
    provenance: dict[str, str] = Field(
        default_factory=dict, description="setting -> where its value came from")


class CaseSpec(_Strict):
    """One (model, dataset) pair to audit, with everything that determines its result."""

    case_id: str = ""
    name: str
    model: str
    data: str
    label: str | None = None
    features: tuple[str, ...] | None = None
    inputs: dict[str, str | tuple[str, ...]] | None = None
    output: str | None = None
    task: Task | None = None
    classes: Classes | None = None
    training: Training = Training()
    probes: tuple[str, ...] = ALL_PROBES
    budget: Budget = Budget()
    seed: int = 0
    data_format: DataFormat | None = Field(
        None, description="the data's format when its name does not say")
    data_schema: str | None = Field(
        None, description="a TFX schema (schema.pbtxt) of TFRecord data: the feature spec")
    trust_model: bool = False
    time_limit_s: float | None = Field(None, gt=0)
    registry: RegistryVersion | None = Field(
        None, description="set when the case is a registry's model version")
    error: str | None = Field(
        None, description="why the case cannot run, found while expanding its source; the "
        "case ends as error without loading anything")


def no_credentials(uri: str | None) -> str | None:
    """`uri` unchanged, unless it holds credentials (they would land in the report)."""
    parts = urlsplit(uri or "")
    if parts.username or parts.password:
        raise ValueError(
            "credentials do not belong in the tracking URI (they would land in the report); "
            "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD; received "
            f"{parts.scheme}://***@{parts.hostname}")
    return uri


class MlflowPublish(_Strict):
    """Tags on each audited model version, and one MLflow run per audit run."""

    experiment: str = Field("flatline", min_length=1, description="experiment of the runs")
    uri: str | None = Field(None, description="tracking URI of the run; default: "
                            "$MLFLOW_TRACKING_URI, else the fleet's registry")

    _uri = field_validator("uri")(lambda value: no_credentials(value))




def case_id(spec: CaseSpec) -> str:
    """`<name-slug>-<digest>`: the digest covers the model's and data's contents (for a
    registry's model version: the registry URI, model name and version, and the data's
    location) and every setting that changes the result, so an unchanged case keeps its id
    across runs."""
    settings = spec.model_dump(mode="json", exclude={"case_id", "name", "model", "data",
                                                     "time_limit_s", "registry", "error",
                                                     "data_schema"})
    for key in ("inputs", "output", "classes", "data_format"):  # added later: unset, ids
        # stay unchanged
        if settings.get(key) is None:
            settings.pop(key, None)
    for key in ("max_rows", "flops"):  # added later: at their defaults, ids stay unchanged
        if settings["budget"].get(key) == getattr(Budget(), key):
            settings["budget"].pop(key)
    if spec.registry is not None:  # the registry's identity: nothing downloaded to hash
        version = spec.registry
        identity = {"registry": [version.registry, version.uri, version.model_name,
                                 version.version], "data": spec.data}
    else:
        identity = {"model": content_digest(spec.model), "data": content_digest(spec.data)}
    if spec.data_schema:  # the schema by its contents, as the data
        identity["schema"] = content_digest(spec.data_schema)
    payload = json.dumps({**identity, **settings}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"{slug(spec.name, 48)}-{digest}"


def slug(text: str, limit: int = 60) -> str:
    """A safe file/partition name: lowercase letters, digits, '.', '_' and '-'."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return cleaned[:limit].rstrip("-.") or "case"
