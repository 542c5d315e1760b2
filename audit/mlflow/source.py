"""The MLflow Model Registry as a source of cases: one case per matching model version.

A `fleet:` entry with `registry: mlflow` names registered models (a glob or a list) and the
version of each (`alias`, `version`, or `tags`: the newest version carrying them). For each:

- the model is the version's artifact (`source`, e.g. `models:/m-<id>`), downloaded in the
  worker by `fetch` through MLflow's artifact API and cached by version;
- training settings the entry leaves unset come from the source run's parameters (Keras 3
  autologging: `epochs`, `batch_size`, `optimizer_name`, `optimizer_learning_rate`; Keras 2:
  `opt_name`, `opt_learning_rate`): a fallback only, as positional `fit` arguments are not
  logged;
- the data is the entry's `data:` template, else the dataset the run logged
  (`mlflow.log_input`) when its URI is readable here;
- the label is the entry's `label:` or the model-version tag `label_tag:`.

`CaseSpec.registry.provenance` records where each came from. Bad input (no such model or
alias, no data, a registry that is down or refuses the credentials) is a case with `error`
set: one line, and the rest of the fleet runs.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import TYPE_CHECKING, Any

from audit.errors import FlatlineError, ManifestError
from audit.io import locations
from audit.manifest.case import CaseSpec, RegistryVersion, Training
from audit.manifest.sources import SourceContext
from audit.mlflow.artifacts import fetch
from audit.mlflow.client import describe, is_missing, make_client, quick_retries

if TYPE_CHECKING:  # the entry's type only: sources take plain settings, not the schema
    from audit.manifest.schema import RegistryEntry

__all__ = ["RUN_PARAMS", "expand", "fetch"]

#: Training field -> the run parameters autologging writes for it (Keras 3 first, Keras 2)
RUN_PARAMS: dict[str, tuple[str, ...]] = {
    "epochs": ("epochs",),
    "batch_size": ("batch_size",),
    "optimizer": ("optimizer_name", "opt_name"),
    "learning_rate": ("optimizer_learning_rate", "opt_learning_rate"),
}


class _CaseFailed(FlatlineError):
    """One model's case cannot be built; the message is its one line."""


def expand(entry: RegistryEntry, context: SourceContext) -> list[CaseSpec]:
    """The entry's cases, by model name; an unreachable registry is one error case. Raises
    `ManifestError` when the MLflow client is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ManifestError(f"{context.where}: registry: mlflow needs the MLflow client; "
                            "pip install 'flatline-audit[mlflow]'") from None
    try:
        with quick_retries():
            client = make_client(entry.uri)
            names = _model_names(client, entry)
    except Exception as exc:  # any client failure is this entry's error line
        return [_failed(entry, context, _pattern(entry), "",
                        f"registry {entry.uri}: cannot list registered models: {describe(exc)}")]
    if not names:
        return [_failed(entry, context, _pattern(entry), "",
                        f"registry {entry.uri}: no registered model matches "
                        f"{_pattern(entry)!r}")]
    specs = []
    broken = ""  # the server failed: the models after it are not asked again
    for name in names:
        try:
            if broken:
                raise _CaseFailed(f"registry {entry.uri}: model {name!r}: {broken}")
            with quick_retries():
                specs.append(_case(client, entry, context, name))
        except _CaseFailed as exc:
            specs.append(_failed(entry, context, name, _selector(entry), str(exc)))
        except ManifestError:
            raise
        except Exception as exc:  # the server failed mid-way: this model's line
            broken = describe(exc)
            specs.append(_failed(entry, context, name, _selector(entry),
                                 f"registry {entry.uri}: model {name!r}: {broken}"))
    return specs


# ---------------------------------------------------------------- which models and versions


def _pattern(entry: RegistryEntry) -> str:
    return entry.models if isinstance(entry.models, str) else ",".join(entry.models)


def _selector(entry: RegistryEntry) -> str:
    if entry.alias is not None:
        return f"@{entry.alias}"
    if entry.version is not None:
        return str(entry.version)
    return "tags:" + ",".join(f"{k}={v}" for k, v in sorted((entry.tags or {}).items()))


def _model_names(client: Any, entry: RegistryEntry) -> list[str]:
    """Registered-model names matching the entry's glob, or its list (listed names that do
    not exist stay, so each fails as its own case)."""
    if not isinstance(entry.models, str):
        return list(dict.fromkeys(entry.models))
    names: list[str] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names += [m.name for m in page if fnmatch.fnmatchcase(m.name, entry.models)]
        token = page.token
        if not token:
            return sorted(names)


def _version(client: Any, entry: RegistryEntry, name: str) -> Any:
    """The model version the entry selects (aliases come only from get_model_version_by_alias:
    search results carry none)."""
    try:
        if entry.alias is not None:
            return client.get_model_version_by_alias(name, entry.alias)
        if entry.version is not None:
            return client.get_model_version(name, str(entry.version))
    except Exception as exc:
        if not is_missing(exc):
            raise
        raise _CaseFailed(_missing(client, entry, name)) from None
    wanted = entry.tags or {}
    versions = client.search_model_versions(f"name = '{_quoted(name)}'")
    matching = [v for v in versions if all(v.tags.get(k) == w for k, w in wanted.items())]
    if not matching:
        raise _CaseFailed(f"model {name!r}: no version has the tags {wanted} "
                          f"({len(versions)} versions)")
    return max(matching, key=lambda v: int(v.version))


def _missing(client: Any, entry: RegistryEntry, name: str) -> str:
    try:
        model = client.get_registered_model(name)
    except Exception as exc:
        if is_missing(exc):
            return f"registry {entry.uri}: no registered model named {name!r}"
        return f"model {name!r}: {describe(exc)}"
    if entry.alias is not None:
        return (f"model {name!r} has no alias {entry.alias!r}; its aliases are "
                f"{sorted(model.aliases or {})}")
    return f"model {name!r} has no version {entry.version}"


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


# ---------------------------------------------------------------- one case


def _case(client: Any, entry: RegistryEntry, context: SourceContext, name: str) -> CaseSpec:
    version = _version(client, entry, name)
    number = str(version.version)
    run = _run(client, version.run_id)
    provenance: dict[str, str] = {}
    training = _training(entry.training, run, provenance)
    label = _label(entry, version, provenance)
    values = {"model": name, "version": number, "alias": entry.alias or ""}
    case_name = _format(entry.name, values, context, "name")
    update: dict[str, Any] = {"training": training, "label": label}
    if entry.data is not None:
        data = _format(entry.data, values, context, "data")
        provenance["data"] = "manifest (data template)"
    else:
        data = _logged_data(run, version.run_id, name, number, provenance)
    if data is None:
        update["error"] = provenance.pop("data_error")
        data = ""
    update["registry"] = RegistryVersion(
        registry=entry.registry, uri=entry.uri, model_name=name, version=number,
        artifact=str(version.source or f"models:/{name}/{number}"), alias=entry.alias,
        run_id=version.run_id or None, cache=entry.cache, provenance=provenance)
    return context.case(entry, case_name, f"models:/{name}/{number}", data, **update)


def _failed(entry: RegistryEntry, context: SourceContext, name: str, selector: str,
            error: str) -> CaseSpec:
    """A case that ends as error at once; its id is still a function of the registry, the
    model and the selector (`@alias`, a version, the tags; '' for the whole entry), so it
    stays stable across runs."""
    registry = RegistryVersion(registry=entry.registry, uri=entry.uri, model_name=name,
                               version=selector, artifact="", alias=entry.alias,
                               cache=entry.cache)
    if selector:  # one model: named as its good case would be, so `audit diff` matches them
        values = {"model": name, "version": selector, "alias": entry.alias or ""}
        case_name = _format(entry.name, values, context, "name")
    else:  # the whole entry failed
        case_name = f"{entry.registry}-{name}"
    where = f"{context.where}: "
    model = f"models:/{name}" + (selector if selector.startswith("@") else
                                 f"/{selector}" if selector else "")
    return context.case(entry, case_name, model, "",
                        registry=registry, error=where + error)


def _format(template: str, values: dict[str, str], context: SourceContext, key: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ManifestError(
            f"{context.where}.{key}: bad template ({exc}); registry templates may use "
            f"{{model}}, {{version}} and {{alias}}; received {template!r}") from None


def _run(client: Any, run_id: str | None) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if is_missing(exc):
            return None  # the run was deleted: no params, no logged dataset
        raise


def _training(manifest: Training, run: Any, provenance: dict[str, str]) -> Training:
    """The entry's training settings, with the unset ones from the run's parameters."""
    params: dict[str, str] = dict(run.data.params) if run is not None else {}
    values: dict[str, Any] = {}
    for field, keys in RUN_PARAMS.items():
        if getattr(manifest, field) is not None:
            provenance[field] = "manifest"
            continue
        for key in keys:
            value = _param(field, params.get(key))
            if value is not None:
                values[field] = value
                provenance[field] = f"run param {key}"
                break
    return manifest.model_copy(update=values)


def _param(field: str, text: str | None) -> Any:
    if text is None or text in ("None", ""):
        return None
    try:
        if field in ("epochs", "batch_size"):
            number = int(float(text))
            return number if number >= 1 else None
        if field == "learning_rate":
            rate = float(text)
            return rate if rate > 0 else None
    except ValueError:
        return None
    # Keras 2 logs 'Adam', Keras 3 the optimizer's name, which Keras makes unique within a
    # process ('adam_55' when other optimizers were built before it): the family is wanted
    return re.sub(r"_\d+$", "", text.strip().lower())


def _label(entry: RegistryEntry, version: Any, provenance: dict[str, str]) -> str:
    if entry.label is not None:
        provenance["label"] = "manifest"
        return entry.label
    tags = dict(version.tags or {})
    tag = str(entry.label_tag)
    if not tags.get(tag):
        raise _CaseFailed(
            f"model {version.name!r} version {version.version}: no model-version tag {tag!r} "
            f"naming the label column; its tags are {sorted(tags)}; tag the version or set "
            "`label:`")
    provenance["label"] = f"model-version tag {tag}"
    return tags[tag]


def _logged_data(run: Any, run_id: str | None, name: str, version: str,
                 provenance: dict[str, str]) -> str | None:
    """The first dataset the run logged whose URI is readable here; else None with
    `provenance['data_error']` saying where it looked."""
    found: list[str] = []
    inputs = run.inputs.dataset_inputs if run is not None and run.inputs else []
    for item in inputs:
        uri = _dataset_uri(item.dataset.source)
        if uri is None:
            continue
        if locations.exists(uri):
            provenance["data"] = f"dataset {item.dataset.name!r} logged by run {run_id}"
            return uri
        found.append(uri)
    logged = (f"run {run_id} logged no dataset with a URI" if not found
              else f"run {run_id} logged {found}, not readable here")
    if run is None:
        logged = f"the source run {run_id or '(none)'} is gone"
    provenance["data_error"] = (
        f"model {name!r} version {version}: no data: looked for the entry's `data:` template "
        f"(not set), a dataset the version's run logged with mlflow.log_input ({logged}), "
        "and a readable URI for it; set `data:` in the entry")
    return None


def _dataset_uri(source: str | None) -> str | None:
    """The URI of a logged dataset's source (JSON such as {"uri": ...}), if it has one."""
    try:
        value = json.loads(source or "")
    except ValueError:
        return None
    uri = value.get("uri") if isinstance(value, dict) else None
    return uri if isinstance(uri, str) and uri else None
