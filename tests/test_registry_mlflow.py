"""The MLflow Model Registry as a fleet source and as the place results are published, against
a real `mlflow server` (SQLite backend, local artifact root) on 127.0.0.1.

The registry holds: `churn-a` (keras flavor, an autologged Keras 3 run, a logged dataset, alias
champion), `churn-b` (tensorflow flavor, alias champion), `legacy-tf` (the TF <= 2.15
tensorflow-flavor layout, `data/model/` with keras_metadata.pb, and the params Keras 2
autologging writes), `gone` (its artifact deleted) and `stale` (its logged dataset moved away).
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before Ray starts: workers inherit
os.environ.setdefault("DO_NOT_TRACK", "true")

import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import free_port, mlflow_server

from audit.manifest.schema import Manifest, parse_manifest

ROOT = Path(__file__).resolve().parent.parent
PIP = ["keras", "tensorflow"]  # given, so log_model does not infer requirements (slow)


@dataclass
class Registry:
    uri: str
    folder: Path
    churn_data: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("mlflow")
    # TensorFlow and MLflow's flavors import while the server starts (both take seconds)
    imports = threading.Thread(target=_import_heavy)
    imports.start()
    with mlflow_server(folder) as uri:
        imports.join()
        yield _populate(uri, folder)


def _import_heavy() -> None:
    import mlflow.keras
    import mlflow.tensorflow  # noqa: F401
    import tf_keras  # noqa: F401


def _table(seed: int, rows: int = 64) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    x = np.random.default_rng(seed).normal(size=(rows, 3)).astype("float32")
    y = x @ np.array([1.0, 2.0, -1.0], dtype="float32")
    return x, y, pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def _keras_model(seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _populate(uri: str, folder: Path) -> Registry:
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    x, y, table = _table(0)
    churn_data = folder / "churn.parquet"
    pq.write_table(table, churn_data)
    mlflow.set_experiment("training")

    # churn-a: keras flavor, an autologged run (keyword fit arguments), a logged dataset
    mlflow.keras.autolog(log_models=False, silent=True)
    with mlflow.start_run():
        mlflow.log_input(mlflow.data.from_pandas(table.to_pandas(), source=str(churn_data),
                                                 targets="y"), context="training")
        model = _keras_model(0)
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        mlflow.keras.log_model(model, name="model", registered_model_name="churn-a",
                               pip_requirements=PIP)
    mlflow.keras.autolog(disable=True)
    # churn-b: the tensorflow flavor (on TF >= 2.16 a .keras file), same data
    with mlflow.start_run():
        mlflow.log_input(mlflow.data.from_pandas(table.to_pandas(), source=str(churn_data)))
        mlflow.tensorflow.log_model(_keras_model(1), name="model",
                                    registered_model_name="churn-b", pip_requirements=PIP)
    for name in ("churn-a", "churn-b"):
        client.set_registered_model_alias(name, "champion", "1")
        client.set_model_version_tag(name, "1", "label_col", "y")

    # legacy-tf: the TF <= 2.15 layout, with the params Keras 2 autologging writes
    _, _, legacy = _table(2)
    pq.write_table(legacy, folder / "legacy-tf.parquet")
    with mlflow.start_run() as run:
        mlflow.log_params({"epochs": "1", "batch_size": "8", "opt_name": "Adam",
                           "opt_learning_rate": "0.01"})
        artifact = _legacy_savedmodel(folder / "legacy")
        mlflow.log_artifacts(str(artifact), "model")
    mlflow.register_model(f"runs:/{run.info.run_id}/model", "legacy-tf")

    # gone: a version whose artifact is deleted after registration
    with mlflow.start_run():
        mlflow.keras.log_model(_keras_model(3), name="model", registered_model_name="gone",
                               pip_requirements=PIP)
    client.set_registered_model_alias("gone", "champion", "1")
    gone = client.get_model_version("gone", "1")
    location = client.get_logged_model(gone.source.removeprefix("models:/")).artifact_location
    shutil.rmtree(location.removeprefix("file://"))

    # stale: the same model as churn-a, but its run's logged dataset has moved away
    with mlflow.start_run() as run:
        moved = folder / "moved.parquet"
        mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"y": [1.0]}), source=str(moved)))
    client.create_registered_model("stale")
    source = client.get_model_version("churn-a", "1").source
    client.create_model_version("stale", source, run.info.run_id,
                                model_id=source.removeprefix("models:/"))
    return Registry(uri, folder, churn_data)


def _legacy_savedmodel(folder: Path) -> Path:
    """An MLflow tensorflow-flavor model as TF <= 2.15 wrote it: MLmodel + data/model/ (a Keras 2
    SavedModel with keras_metadata.pb), built with tf_keras."""
    import tf_keras

    x, y, _ = _table(2)
    tf_keras.utils.set_random_seed(2)
    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(4, "relu"),
                                 tf_keras.layers.Dense(1)])
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(folder / "data" / "model")  # no suffix: Keras 2's SavedModel
    assert (folder / "data" / "model" / "keras_metadata.pb").exists()
    (folder / "MLmodel").write_text(yaml.safe_dump({
        "flavors": {"tensorflow": {"data": "data", "model_type": "keras", "save_format": "tf",
                                   "keras_version": "2.15.0"},
                    "python_function": {"loader_module": "mlflow.tensorflow"}}}))
    return folder


def _manifest(registry: Registry, *entries: dict[str, Any], **top: Any) -> Manifest:
    cache = str(registry.folder / "cache")
    fleet = [{"registry": "mlflow", "uri": registry.uri, "cache": cache, **e} for e in entries]
    return parse_manifest({"name": "registry-night", "probes": ["data", "config"],
                           "output": str(registry.folder / "reports"), "fleet": fleet, **top})


CHAMPIONS = {"models": "churn-*", "alias": "champion", "label_tag": "label_col"}
LEGACY = {"models": ["legacy-tf"], "version": 1, "label": "y", "training": {"epochs": 2},
          "data": "{model}.parquet"}


# ---------------------------------------------------------------- expanding the registry


def test_an_alias_over_a_name_glob_is_one_case_per_model_with_its_settings_sources(
        registry: Registry) -> None:
    cases = _manifest(registry, CHAMPIONS).cases()
    assert [c.name for c in cases] == ["churn-a", "churn-b"]
    a, b = cases
    assert a.error is None and b.error is None
    assert a.model == "models:/churn-a/1" and a.registry is not None
    assert a.registry.artifact.startswith("models:/m-") and a.registry.alias == "champion"
    assert a.data == str(registry.churn_data) and a.label == "y"
    assert (a.training.epochs, a.training.batch_size, a.training.optimizer) == (3, 16, "adam")
    assert a.training.learning_rate == pytest.approx(0.01, rel=1e-5)
    assert a.registry.provenance == {
        "epochs": "run param epochs", "batch_size": "run param batch_size",
        "optimizer": "run param optimizer_name",
        "learning_rate": "run param optimizer_learning_rate",
        "label": "model-version tag label_col",
        "data": f"dataset 'dataset' logged by run {a.registry.run_id}"}
    assert b.training.epochs is None and "epochs" not in b.registry.provenance  # no params


def test_the_manifest_wins_over_run_params_and_keras2_param_names_are_read(
        registry: Registry) -> None:
    (legacy,) = _manifest(registry, LEGACY).cases()
    assert legacy.error is None, legacy.error
    assert legacy.data.endswith("legacy-tf.parquet")
    assert (legacy.training.epochs, legacy.training.batch_size) == (2, 8)
    assert legacy.training.optimizer == "adam"
    assert legacy.training.learning_rate == pytest.approx(0.01)
    provenance = legacy.registry.provenance
    assert provenance["epochs"] == "manifest" and provenance["optimizer"] == "run param opt_name"
    assert provenance["data"] == "manifest (data template)" and provenance["label"] == "manifest"


def test_case_ids_are_the_registrys_identity_stable_and_new_for_a_new_version(
        registry: Registry) -> None:
    from mlflow import MlflowClient

    first = {c.name: c.case_id for c in _manifest(registry, CHAMPIONS).cases()}
    assert first == {c.name: c.case_id for c in _manifest(registry, CHAMPIONS).cases()}
    client = MlflowClient(registry.uri)
    one = client.get_model_version("churn-a", "1")
    two = client.create_model_version("churn-a", one.source, one.run_id,
                                      model_id=one.source.removeprefix("models:/"))
    client.set_model_version_tag("churn-a", two.version, "label_col", "y")
    client.set_registered_model_alias("churn-a", "champion", two.version)
    try:
        moved = {c.name: c for c in _manifest(registry, CHAMPIONS).cases()}
    finally:
        client.set_registered_model_alias("churn-a", "champion", "1")
    # a new version is a new case under the same name (how `audit diff` matches it)
    assert moved["churn-a"].case_id != first["churn-a"] and moved["churn-a"].model.endswith("/2")
    assert moved["churn-b"].case_id == first["churn-b"]


def test_bad_input_is_one_error_line_per_case_and_the_rest_expands(registry: Registry) -> None:
    cases = _manifest(registry, CHAMPIONS | {"alias": "nope", "name": "{model}-nope"},
                      {"models": ["stale", "no-such-model"], "version": 1, "label": "y"},
                      CHAMPIONS).cases()
    errors = {c.name: c.error for c in cases if c.error}
    assert errors["churn-a-nope"].endswith(
        "model 'churn-a' has no alias 'nope'; its aliases are ['champion']")
    assert "no registered model named 'no-such-model'" in errors["no-such-model"]
    stale = errors["stale"]
    assert "`data:` template (not set)" in stale and "moved.parquet" in stale, stale
    assert all("\n" not in e for e in errors.values())
    assert [c.name for c in cases if not c.error] == ["churn-a", "churn-b"]


def test_tags_select_the_newest_version_carrying_them(registry: Registry) -> None:
    from mlflow import MlflowClient

    MlflowClient(registry.uri).set_model_version_tag("churn-b", "1", "team", "growth")
    cases = _manifest(registry, {"models": "churn-*", "tags": {"team": "growth"},
                                 "label": "y", "data": str(registry.churn_data)}).cases()
    by_name = {c.name: c for c in cases}
    assert by_name["churn-b"].error is None and by_name["churn-b"].model == "models:/churn-b/1"
    assert "model 'churn-a': no version has the tags {'team': 'growth'}" in (
        by_name["churn-a"].error or "")


def test_validate_lists_the_registry_cases_and_their_errors(registry: Registry,
                                                            tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from audit.cli.app import app

    entry = {"registry": "mlflow", "uri": registry.uri, **CHAMPIONS}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"name": "v", "fleet": [
        entry, entry | {"alias": "nope", "name": "{model}-nope"}]}))
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "models:/churn-a/1" in result.output and "models:/churn-b/1" in result.output
    assert "no alias 'nope'" in result.output
    assert "4 cases" in result.output and "2 cases already failed" in result.output


def test_every_source_is_registered_and_an_unknown_one_lists_them() -> None:
    from audit.manifest.sources import SOURCES, get_source

    design = (ROOT / "docs" / "design.md").read_text()
    for name, module in SOURCES.items():
        assert callable(get_source(name))
        assert f"`{module.rsplit('.', 1)[1]}.py`" in design, module
    with pytest.raises(KeyError, match=r"valid sources are \['glob', 'mlflow'\]"):
        get_source("sagemaker")


def test_a_registry_that_is_down_is_one_error_case_quickly(registry: Registry) -> None:
    started = time.monotonic()
    (case,) = parse_manifest({"name": "down", "fleet": [
        {"registry": "mlflow", "uri": f"http://127.0.0.1:{free_port()}", "models": "churn-*",
         "alias": "champion", "label": "y"}]}).cases()
    assert time.monotonic() - started < 20
    assert case.name == "mlflow-churn-*" and "cannot be reached" in (case.error or "")


def test_a_wrong_token_is_one_error_line_and_the_right_one_reaches_the_server(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    with _token_gate(registry.uri, "right-token") as gated:
        entry = CHAMPIONS | {"uri": gated}
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wrong-token")
        (case,) = _manifest(registry, entry).cases()
        assert "refused the credentials" in (case.error or ""), case.error
        assert "wrong-token" not in case.model_dump_json()
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "right-token")
        assert [c.error for c in _manifest(registry, entry).cases()] == [None, None]


def test_a_version_whose_artifact_is_gone_ends_as_error_without_ray(registry: Registry) -> None:
    from audit.engine import audit_case

    (case,) = _manifest(registry, {"models": ["gone"], "alias": "champion", "label": "y",
                                   "data": str(registry.churn_data)}).cases()
    assert case.error is None  # the registry still lists it: the worker finds out
    report = audit_case(case)
    assert report.status == "error" and report.source is not None
    assert report.error.startswith("model 'gone' version 1: cannot download its artifact")


def test_both_flavors_and_the_old_savedmodel_layout_are_found(registry: Registry) -> None:
    from audit.mlflow.artifacts import fetch

    cases = _manifest(registry, CHAMPIONS, LEGACY).cases()
    found = {c.name: Path(fetch(c).model) for c in cases}
    assert found["churn-a"].name == "model.keras" and found["churn-b"].name == "model.keras"
    assert (found["legacy-tf"] / "keras_metadata.pb").exists()
    assert fetch(cases[0]).model == str(found["churn-a"])  # cached: the same file again


# ---------------------------------------------------------------- auditing and publishing


@pytest.mark.ray
def test_a_registry_fleet_is_audited_and_published_back(registry: Registry,
                                                        module_ray: str) -> None:
    from mlflow import MlflowClient

    from audit.fleet import FleetOptions, run_fleet
    from audit.reports import query

    manifest = _manifest(
        registry, CHAMPIONS, LEGACY | {"data": str(registry.folder / "{model}.parquet")},
        {"models": ["gone"], "alias": "champion", "label": "y",
         "data": str(registry.churn_data)},
        CHAMPIONS | {"alias": "nope", "name": "{model}-nope"},
        publish={"mlflow": {"experiment": "flatline-test"}})
    result = run_fleet(manifest, FleetOptions(address=module_ray, progress=False,
                                              handle_signals=False, run_id="night-1"))
    assert (result.n_cases, result.n_error) == (6, 3), result
    assert result.warnings == [] and "tagged 4 model versions" in result.published[0]
    _, rows = query(manifest.output_uri, "select name, status, verdict, source from cases "
                    "order by name")
    by_name = {r[0]: r for r in rows}
    assert {n for n, r in by_name.items() if r[1] == "ok"} == {"churn-a", "churn-b",
                                                              "legacy-tf"}
    assert '"run param epochs"' in by_name["churn-a"][3]

    client = MlflowClient(registry.uri)
    tags = client.get_model_version("churn-a", "1").tags
    assert tags["flatline.verdict"] == by_name["churn-a"][2]
    assert tags["flatline.run_id"] == "night-1"
    assert set(tags) >= {"flatline.primary_fault", "flatline.confidence", "flatline.report"}
    assert client.get_model_version("gone", "1").tags["flatline.verdict"] == "error"
    experiment = client.get_experiment_by_name("flatline-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert tags["flatline.report"] == f"runs:/{run.info.run_id}/report.html"
    assert run.data.metrics["cases"] == 6 and run.data.metrics["verdict.error"] == 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"report.html", "report"}
    tables = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert tables == {"report/cases", "report/findings", "report/metrics", "report/runs"}


def test_publishing_never_loses_the_report_and_each_failure_is_one_warning(
        registry: Registry, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from audit.evidence.results import CaseReport, Finding
    from audit.manifest.case import MlflowPublish
    from audit.mlflow.publish import publish_mlflow
    from audit.reports import Store, query

    output = str(tmp_path / "reports")
    source = {"registry": "mlflow", "uri": registry.uri, "model_name": "churn-b",
              "version": "1", "provenance": {}}
    finding = Finding(fault="dead_relu", severity="critical", confidence=0.875, confirmed=True,
                      probe="activations", evidence={}, recommendation="fix it")
    Store(output).write_case(
        "r1",
        CaseReport(
            case_id="b-1",
            name="churn-b",
            model="models:/churn-b/1",
            data="d",
            status="ok",
            verdict="flat",
            primary_fault="dead_relu",
            findings=[finding],
            source=source,
        ),
    )
    Store(output).write_case(
        "r1",
        CaseReport(
            case_id="x-1",
            name="ghost",
            model="models:/ghost/7",
            data="d",
            status="ok",
            verdict="healthy",
            source=source | {"model_name": "ghost", "version": "7"},
        ),
    )
    before = query(output, "select count(*) from cases")[1]

    down = publish_mlflow(
        output, "r1", MlflowPublish(uri=f"http://127.0.0.1:{free_port()}", experiment="never")
    )
    assert down.mlflow_run_id is None
    assert any("cannot log the run" in w and "cannot be reached" in w for w in down.warnings)

    published = publish_mlflow(output, "r1", MlflowPublish(experiment="flatline-unit"))
    assert published.mlflow_run_id is not None and published.tagged == ["churn-b/1"]
    (warning,) = published.warnings  # the version that does not exist: one line
    assert warning.startswith("publish: cannot tag model version ghost/7") and "\n" not in warning
    tags = MlflowClient(registry.uri).get_model_version("churn-b", "1").tags
    assert (
        tags["flatline.verdict"],
        tags["flatline.primary_fault"],
        tags["flatline.confidence"],
        tags["flatline.run_id"],
    ) == ("flat", "dead_relu", "0.88", "r1")
    assert query(output, "select count(*) from cases")[1] == before


def test_diff_matches_a_new_version_to_the_old_one_by_model_name(tmp_path: Path) -> None:
    from audit.evidence.results import CaseReport
    from audit.reports import Store, diff_runs

    store = Store(str(tmp_path))
    for run, version, verdict in (("n1", "1", "healthy"), ("n2", "2", "error")):
        source = {
            "registry": "mlflow",
            "uri": "http://h",
            "model_name": "churn-a",
            "version": version,
            "provenance": {},
        }
        store.write_case(
            run,
            CaseReport(
                case_id=f"churn-a-v{version}",
                name="churn-a",
                model=f"models:/churn-a/{version}",
                data="d",
                status="ok" if verdict != "error" else "error",
                verdict=verdict,
                source=source,
            ),
        )
    diff = diff_runs(str(tmp_path), "n1", "n2")
    assert [(c.kind, c.name) for c in diff.changes] == [("regression", "churn-a")]


# ---------------------------------------------------------------- a token-checking gate


class _Gate(BaseHTTPRequestHandler):
    """Forwards to the MLflow server when the bearer token is right, else 401 (what an MLflow
    server behind an authenticating proxy answers)."""

    upstream = ""
    token = ""

    def _handle(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error_code": "UNAUTHENTICATED", "message": "Unauthorized"}')
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(
            self.upstream + self.path,
            data=body,
            method=self.command,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, *args: Any) -> None:
        pass


class _GateServer(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def _unused() -> None:  # pragma: no cover - keeps pytest from collecting the helpers above
    return None


def _token_gate(upstream: str, token: str) -> Any:
    import contextlib

    @contextlib.contextmanager
    def gate() -> Iterator[str]:
        handler = type("Gate", (_Gate,), {"upstream": upstream, "token": token})
        server = _GateServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    return gate()


# ---------------------------------------------------------------- the manifest's registry keys


@pytest.mark.parametrize(
    ("entry", "env", "expected"),
    [
        ({"alais": "champion"}, {}, "fleet[0].alais: unknown key; did you mean 'alias'?"),
        (
            {"alias": "champion", "version": 3},
            {},
            "exactly one of `alias:`, `version:` or `tags:`; received ['alias', 'version']",
        ),
        ({"alias": "champion", "label": None}, {}, "exactly one of `label:` or `label_tag:`"),
        (
            {"alias": "champion", "uri": None},
            {},
            "fleet[0].uri: no tracking URI; set `uri:` in the entry or MLFLOW_TRACKING_URI",
        ),
        (
            {"alias": "champion", "uri": "https://me:pw@mlflow.internal"},
            {},
            "fleet[0].uri: credentials do not belong in the tracking URI",
        ),
    ],
)
def test_registry_entry_mistakes_are_one_line(
    entry: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    from audit.manifest.schema import ManifestError

    item = {"registry": "mlflow", "uri": "http://h:5000", "models": "m-*", "label": "y", **entry}
    item = {k: v for k, v in item.items() if v is not None}
    with pytest.raises(ManifestError) as info:
        parse_manifest({"name": "n", "fleet": [item]}, env=env)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert "pw@" not in str(info.value)


def test_the_tracking_uri_and_cache_come_from_the_environment_at_the_edge() -> None:
    manifest = parse_manifest(
        {
            "name": "n",
            "fleet": [{"registry": "mlflow", "models": "m-*", "alias": "a", "label": "y"}],
        },
        base_dir="/base",
        env={"MLFLOW_TRACKING_URI": "http://h:5000", "XDG_CACHE_HOME": "/var/cache"},
    )
    (entry,) = manifest.fleet
    assert (entry.uri, entry.cache) == ("http://h:5000", "/var/cache/flatline/mlflow")


# ---------------------------------------------------------------- docs


def test_the_docs_show_the_registry_keys_and_what_publishing_writes() -> None:
    from audit.manifest.schema import RegistryEntry
    from audit.mlflow.publish import TAGS

    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "jobs" / "registry.yaml").read_text()
    keys = [f.alias or name for name, f in RegistryEntry.model_fields.items()]
    for key in (
        "registry",
        "uri",
        "models",
        "alias",
        "version",
        "tags",
        "data",
        "label",
        "label_tag",
        "name",
        "cache",
        "training",
    ):
        assert key in keys and f"{key}:" in example, key
    for phrase in (
        "registry: mlflow",
        "--publish mlflow",
        "MLFLOW_TRACKING_TOKEN",
        *TAGS,
        "jobs/registry.yaml",
        "cases.source",
    ):
        assert phrase in readme, phrase
    assert "audit/manifest/sources/" in (ROOT / "docs" / "design.md").read_text()


def test_run_offers_publishing_to_mlflow() -> None:
    from typer.testing import CliRunner

    from audit.cli.app import app

    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--publish" in result.output and "mlflow" in result.output
    bad = CliRunner().invoke(
        app,
        ["run", "x.yaml", "--publish", "mlflow"],
        env={"MLFLOW_TRACKING_URI": "https://me:secret@mlflow.internal"},
    )
    assert bad.exit_code == 2 and "secret" not in bad.output
    assert "credentials do not belong in the tracking URI" in bad.output


def test_a_manifest_without_a_registry_never_imports_mlflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.yaml").write_text(
        "name: n\nfleet:\n  - models: '*.keras'\n    data: '{stem}.parquet'\n"
    )
    code = (
        "import sys; from audit.manifest.schema import load_manifest; "
        f"load_manifest({str(tmp_path / 'm.yaml')!r}).cases(); "
        "print('mlflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "False"


def test_an_autologged_optimizer_name_reads_as_its_family() -> None:
    """Keras 3 logs the optimizer's unique name: the 55th Adam of a process is 'adam_55'."""
    from audit.mlflow.source import _param

    assert [_param("optimizer", t) for t in ("adam_55", "Adam", "sgd", "rmsprop_2")] == [
        "adam",
        "adam",
        "sgd",
        "rmsprop",
    ]
