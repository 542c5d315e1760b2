"""What to audit: the typed case specification and the manifest (YAML) that yields cases.

Everything here is plain data validated by pydantic: no TensorFlow, no Ray, no I/O beyond
reading a manifest and hashing files for case ids. A `fleet:` entry is expanded into cases by
its source (`audit.manifest.sources`: a glob over files, a model registry), one module per
source, each a `CaseSource` called with a `SourceContext`. The plain case types are in
`audit.manifest.case` (re-exported here).
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from audit.errors import ManifestError, ManifestFilesMissing
from audit.io.locations import resolve_location, stem
from audit.manifest.case import (
    ALL_PROBES,
    Budget,
    CaseSpec,
    Classes,
    DataFormat,
    MlflowPublish,
    RegistryVersion,
    Resources,
    Task,
    Training,
    _Strict,
    case_id,
    no_credentials,
)
from audit.manifest.hints import describe
from audit.manifest.sources import SourceContext, get_source
from audit.util.deadline import check_deadline

#: the plain case types live in `audit.manifest.case`; they are re-exported here, where a
#: manifest's reader looks for them
__all__ = ["ALL_PROBES", "Budget", "CaseEntry", "CaseSpec", "Classes", "DataFormat", "Execution",
           "FleetEntry", "Manifest", "ManifestError", "ManifestFilesMissing", "MlflowPublish",
           "Publish", "RegistryEntry", "RegistryVersion", "Resources", "Task", "Training",
           "load_manifest", "parse_manifest"]

# ---------------------------------------------------------------- the manifest


class Execution(_Strict):
    """How the fleet runs: per-case time limit, retries, actor recycling, concurrency."""

    time_limit_s: float = Field(1800.0, gt=0, description="a case running longer is `timeout`")
    max_attempts: int = Field(3, ge=1, le=10, description="tries of a case whose worker crashed")
    cases_per_actor: int = Field(
        50, ge=1, description="recycle an actor after this many cases (TF keeps its memory)"
    )
    max_concurrency: int | None = Field(None, ge=1, description="at most this many actors")
    reuse_days: float = Field(
        7.0, ge=0, description="a case unchanged since an `ok` audit at most this many days "
        "old (same output, same Flatline version) is not audited again: its rows are reused; "
        "0: audit every case")
    deadline: str | None = Field(
        None, description="no case starts that cannot finish by then (it ends `deferred`): a "
        "clock time such as '06:00 Europe/Berlin' (its next occurrence), an instant, or a "
        "duration from the start such as '5h'")

    _deadline = field_validator("deadline")(
        lambda value: value if value is None else check_deadline(value))


class _CaseSettings(_Strict):
    """What a `cases:` item and a `fleet:` item both may set; unset ones come from the top."""

    label: str | None = None
    features: tuple[str, ...] | None = None
    inputs: dict[str, str | tuple[str, ...]] | None = Field(
        None, description="model input name -> column or list of columns (default: by name)"
    )
    output: str | None = Field(None, description="the head a multi-output model is audited on")
    task: Task | None = None
    classes: Classes | None = Field(
        None, description="the model's class order (the label of unit 0, 1, ...); default: sorted"
    )
    training: Training = Training()
    probes: tuple[str, ...] | None = None
    budget: Budget | None = None
    seed: int | None = None
    time_limit_s: float | None = Field(None, gt=0)
    data_format: DataFormat | None = Field(
        None, description="the data's format when its name does not say, e.g. {type: "
        "tfrecord, compression: GZIP}; default: by the suffix (a folder of .tfrecord[.gz] "
        "shards is TFRecord)")
    data_schema: str | None = Field(
        None, alias="schema", min_length=1, description="TFRecord data's TFX schema "
        "(schema.pbtxt, as TFDV/SchemaGen write it): the feature spec; relative to the file; "
        "in a fleet entry a template like `data`")


class CaseEntry(_CaseSettings):
    """One `cases:` item of a manifest; unset settings come from the manifest's top level."""

    name: str | None = Field(None, min_length=1, description="default: the model file's stem")
    model: str = Field(min_length=1)
    data: str = Field(min_length=1)


class FleetEntry(_CaseSettings):
    """One `fleet:` item: every model matching a glob, each with its data from a template.

    Templates may use `{stem}` (the model's file name without suffix), `{parent}` (its folder's
    name) and `{name}` (the case's name).
    """

    models: str = Field(min_length=1, description="glob, e.g. models/**/*.keras")
    data: str = Field(min_length=1, description="template, e.g. data/{stem}.parquet")
    name: str = Field("{stem}", min_length=1, description="template of the case name")

    @property
    def source(self) -> str:
        return "glob"


class RegistryEntry(_CaseSettings):
    """One `fleet:` item over a model registry: each registered model whose name matches
    `models`, at the version named by `alias`, `version` or `tags` (the newest version carrying
    them), is a case. Templates (`data`, `name`) may use `{model}`, `{version}` and `{alias}`.

    Training settings the manifest leaves unset come from the source run's parameters; the
    label comes from `label` or the model-version tag `label_tag`, never guessed.
    """

    registry: Literal["mlflow"] = Field(description="the registry kind")
    uri: str = Field(min_length=1, description="tracking URI; default: $MLFLOW_TRACKING_URI")
    models: str | tuple[str, ...] = Field(description="registered-model name glob, or a list")
    alias: str | None = Field(None, min_length=1, description="e.g. champion")
    version: int | None = Field(None, ge=1)
    tags: dict[str, str] | None = Field(None, description="model-version tags to match")
    data: str | None = Field(None, min_length=1, description="template; default: the "
                             "dataset the version's run logged (mlflow.log_input)")
    label_tag: str | None = Field(None, min_length=1,
                                  description="model-version tag holding the label column")
    name: str = Field("{model}", min_length=1, description="template of the case name")
    cache: str = Field("", description="local folder of downloaded versions; default: "
                       "$XDG_CACHE_HOME/flatline/<registry> (~/.cache/...)")

    @property
    def source(self) -> str:
        return self.registry

    _uri = field_validator("uri")(lambda value: no_credentials(value))

    @model_validator(mode="after")
    def _one_selector(self) -> RegistryEntry:
        chosen = [k for k in ("alias", "version", "tags") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("a registry entry selects its versions with exactly one of "
                             f"`alias:`, `version:` or `tags:`; received {chosen or 'none'}")
        if (self.label is None) == (self.label_tag is None):
            raise ValueError("a registry entry names its label column with exactly one of "
                             "`label:` or `label_tag:` (a model-version tag); a registry does "
                             "not record it")
        return self


def _fleet_kind(value: Any) -> str:
    if isinstance(value, RegistryEntry) or (isinstance(value, dict) and "registry" in value):
        return "registry"
    return "glob"


#: the `fleet:` item types, by the tag pydantic puts in an error's location
_FLEET_KINDS: dict[str, type[BaseModel]] = {"glob": FleetEntry, "registry": RegistryEntry}
AnyFleetEntry = Annotated[
    Annotated[FleetEntry, Tag("glob")] | Annotated[RegistryEntry, Tag("registry")],
    Discriminator(_fleet_kind),
]


class Publish(_Strict):
    """`publish: {mlflow: {...}}`: where a run's results go besides the Parquet report."""

    mlflow: MlflowPublish | None = None


class Manifest(_Strict):
    """A run's manifest (jobs/*.yaml): where to write, how to run, and which cases."""

    name: str = Field(min_length=1, description="run name")
    output: str = Field("reports", min_length=1, description="folder or URI; relative to the file")
    resources: Resources = Resources()
    probes: tuple[str, ...] = ALL_PROBES
    budget: Budget = Budget()
    seed: int = 0
    execution: Execution = Execution()
    entries: tuple[CaseEntry, ...] = Field((), alias="cases")
    fleet: tuple[AnyFleetEntry, ...] = ()
    publish: Publish = Publish()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _base_dir: str = PrivateAttr("")
    _source: str = PrivateAttr("")

    @property
    def base_dir(self) -> str:
        """The folder relative paths resolve against (the manifest file's folder)."""
        return self._base_dir

    @property
    def source(self) -> str:
        """The manifest file this came from ('' when parsed from a mapping)."""
        return self._source

    @field_validator("probes")
    @classmethod
    def _known_probes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_probes(value)

    @model_validator(mode="after")
    def _some_cases(self) -> Manifest:
        if not self.entries and not self.fleet:
            raise ValueError("the manifest lists no cases; add `cases:` or `fleet:`")
        for entry in (*self.entries, *self.fleet):
            if entry.probes is not None:
                _check_probes(entry.probes)
        return self

    @property
    def output_uri(self) -> str:
        """The output as an absolute local path or a URI."""
        return resolve_location(self.output, self.base_dir)

    def cases(self, trust_models: bool = False) -> list[CaseSpec]:
        """Every case with resolved paths and stable ids, in manifest order (each fleet
        entry's cases sorted by its source).

        Raises `ManifestError` for duplicate names and `ManifestFilesMissing` for a fleet glob
        that matches nothing.
        """
        specs = [self.make_case(entry, entry.name, entry.model, entry.data, trust_models,
                                where=f"cases[{i}]")
                 for i, entry in enumerate(self.entries)]
        for i, fleet_entry in enumerate(self.fleet):
            context = SourceContext(f"fleet[{i}]", self.base_dir,
                                    functools.partial(self.make_case, trust=trust_models))
            specs.extend(get_source(fleet_entry.source)(fleet_entry, context))
        _check_unique(specs)
        return specs

    def make_case(self, entry: _CaseSettings, name: str | None, model: str, data: str,
                  trust: bool, where: str = "", **update: Any) -> CaseSpec:
        """One case of `entry`: paths resolved, the manifest's defaults filled in, `update`
        (e.g. training settings a source found) applied, and its stable id."""
        if update.get("registry") is None:  # a registry's model is named by the registry
            model = resolve_location(model, self.base_dir)
        data = resolve_location(data, self.base_dir) if data else data
        probes = entry.probes if entry.probes is not None else self.probes
        values: dict[str, Any] = dict(
            name=name or stem(model),
            model=model,
            data=data,
            label=entry.label,
            features=entry.features,
            inputs=entry.inputs,
            output=entry.output,
            task=entry.task,
            classes=entry.classes,
            training=entry.training,
            probes=tuple(p for p in ALL_PROBES if p in probes),
            budget=entry.budget or self.budget,
            seed=self.seed if entry.seed is None else entry.seed,
            trust_model=trust,
            time_limit_s=entry.time_limit_s or self.execution.time_limit_s,
            data_format=entry.data_format,
            data_schema=entry.data_schema,
        )
        values.update(update)
        if values["data_schema"]:
            values["data_schema"] = resolve_location(values["data_schema"], self.base_dir)
        spec = CaseSpec(**values)
        return spec.model_copy(update={"case_id": case_id(spec)})


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; relative paths in it resolve against its folder.

    Raises `ManifestError` with one line per problem, each naming the key's path and what was
    expected, with a hint for misspelt keys.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: a manifest is a mapping of keys; received "
                            f"{type(doc).__name__}")
    doc.setdefault("name", path.stem)
    manifest = parse_manifest(doc, where=str(path), base_dir=str(path.resolve().parent))
    manifest._source = str(path.resolve())
    return manifest


def parse_manifest(doc: dict[str, Any], where: str = "manifest", base_dir: str = "",
                   env: Mapping[str, str] | None = None) -> Manifest:
    """Validate a manifest given as a mapping (YAML already parsed); relative paths in it
    resolve against `base_dir` (default: the current folder). `env` (default: this process's
    environment) supplies what a registry entry leaves unset: its tracking URI
    (MLFLOW_TRACKING_URI) and its cache folder (XDG_CACHE_HOME)."""
    env = os.environ if env is None else env
    doc = _with_environment(doc, where, base_dir or os.getcwd(), env)
    try:
        manifest = Manifest.model_validate(doc)
        manifest._base_dir = base_dir or os.getcwd()
        return manifest
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # typos first
        problems = [describe(error, Manifest, _FLEET_KINDS) for error in errors]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ManifestError(f"{where}: " + "; ".join(problems[:3]) + more) from None


def _with_environment(doc: dict[str, Any], where: str, base_dir: str,
                      env: Mapping[str, str]) -> dict[str, Any]:
    """The manifest with each registry entry's unset `uri` and `cache` filled from `env`:
    the one place the environment is read, so the typed entries hold every setting."""
    fleet = doc.get("fleet")
    items: list[Any] = []
    cache_home = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for i, item in enumerate(fleet if isinstance(fleet, list) else []):
        if isinstance(item, dict) and "registry" in item:
            item = dict(item)
            if not item.get("uri"):
                uri = env.get("MLFLOW_TRACKING_URI")
                if not uri:
                    raise ManifestError(
                        f"{where}: fleet[{i}].uri: no tracking URI; set `uri:` in the entry or "
                        "MLFLOW_TRACKING_URI in the environment")
                item["uri"] = uri
            cache = item.get("cache") or os.path.join(cache_home, "flatline",
                                                      str(item["registry"]))
            item["cache"] = resolve_location(str(cache), base_dir)
        items.append(item)
    publish = doc.get("publish")
    if isinstance(publish, dict) and isinstance(publish.get("mlflow"), dict) and \
            not publish["mlflow"].get("uri") and env.get("MLFLOW_TRACKING_URI"):
        publish = {**publish, "mlflow": {**publish["mlflow"],
                                         "uri": env["MLFLOW_TRACKING_URI"]}}
    changed = {"fleet": items} if isinstance(fleet, list) else {}
    if publish is not None:
        changed["publish"] = publish
    return {**doc, **changed}


# ---------------------------------------------------------------- checks


def _check_probes(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if name not in ALL_PROBES:
            close = difflib.get_close_matches(name, ALL_PROBES, n=1)
            hint = (f"did you mean {close[0]!r}?" if close
                    else f"valid probes are {list(ALL_PROBES)}")
            raise ValueError(f"unknown probe {name!r}; {hint}")
    return names


def _check_unique(specs: list[CaseSpec]) -> None:
    seen: dict[str, CaseSpec] = {}
    for spec in specs:
        if spec.name in seen:
            raise ManifestError(
                f"case name {spec.name!r} appears twice ({seen[spec.name].model} and "
                f"{spec.model}); give each case its own `name:` "
                "(in a fleet: name: '{parent}-{stem}')"
            )
        seen[spec.name] = spec
