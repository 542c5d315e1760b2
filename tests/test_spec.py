"""Manifests: validation with key paths and hints, path resolution, fleet globs, stable ids.

No Ray and no TensorFlow: case ids hash file bytes, so stand-in files are enough.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from audit.io.locations import expand_glob, resolve_location
from audit.manifest.case import ALL_PROBES
from audit.manifest.schema import (
    Manifest,
    ManifestError,
    ManifestFilesMissing,
    load_manifest,
    parse_manifest,
)

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def _write(folder: Path, doc: dict[str, object], name: str = "m.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc))
    return path


def _files(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"contents of {name}".encode())


def _case(**over: object) -> dict[str, object]:
    return {"name": "one", "model": "models/a.keras", "data": "data/a.parquet", **over}


def _error(doc: dict[str, object]) -> str:
    with pytest.raises(ManifestError) as info:
        parse_manifest(doc)
    return str(info.value)


# ---------------------------------------------------------------- validation


def test_unknown_key_names_its_path_and_suggests_the_right_one() -> None:
    doc = {"name": "n", "cases": [_case(), _case(name="two"), _case(name="3"),
                                  _case(name="4", lable="y")]}
    assert "cases[3].lable: unknown key; did you mean 'label'?" in _error(doc)


def test_unknown_nested_key_suggests_within_its_own_section() -> None:
    doc = {"name": "n", "budget": {"epoch": 3}, "cases": [_case()]}
    assert "budget.epoch: unknown key; did you mean 'epochs'?" in _error(doc)
    doc = {"name": "n", "resourcs": {}, "cases": [_case()]}
    assert "resourcs: unknown key; did you mean 'resources'?" in _error(doc)


def test_wrong_type_names_the_key_and_shows_what_was_received() -> None:
    message = _error({"name": "n", "budget": {"epochs": "ten"}, "cases": [_case()]})
    assert "budget.epochs:" in message and "integer" in message and "'ten'" in message
    message = _error({"name": "n", "cases": [_case(task="ranking")]})
    assert "cases[0].task:" in message and "'ranking'" in message


def test_unknown_probe_gets_a_hint() -> None:
    message = _error({"name": "n", "probes": ["data", "sensitivty"], "cases": [_case()]})
    assert "unknown probe 'sensitivty'; did you mean 'sensitivity'?" in message


def test_a_manifest_without_cases_is_refused() -> None:
    assert "lists no cases" in _error({"name": "n"})


def test_errors_are_one_line() -> None:
    message = _error({"name": "n", "bogus": 1, "budget": {"seeds": 0}, "cases": [{}]})
    assert "\n" not in message and "bogus" in message


def test_load_manifest_reports_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(tmp_path / "bad.yaml")
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        load_manifest(tmp_path / "absent.yaml")


# ---------------------------------------------------------------- paths and defaults


def test_relative_paths_resolve_against_the_manifest_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(tmp_path / "job", "models/a.keras", "data/a.parquet")
    path = _write(tmp_path / "job", {"name": "n", "output": "out", "cases": [_case()]})
    monkeypatch.chdir(tmp_path)  # somewhere else
    manifest = load_manifest("job/m.yaml")
    (case,) = manifest.cases()
    assert case.model == str(tmp_path / "job" / "models" / "a.keras")
    assert case.data == str(tmp_path / "job" / "data" / "a.parquet")
    assert manifest.output_uri == str(tmp_path / "job" / "out")
    assert manifest.source == str(path)


def test_uris_and_absolute_paths_are_kept(tmp_path: Path) -> None:
    model = f"file://{tmp_path}/m.keras"  # (an s3:// model would be hashed over the network)
    doc = {"name": "n", "output": "s3://bucket/reports",
           "cases": [_case(model=model, data=str(tmp_path / "d.parquet"))]}
    manifest = parse_manifest(doc, base_dir=str(tmp_path / "elsewhere"))
    (case,) = manifest.cases()
    assert (case.model, case.data) == (model, str(tmp_path / "d.parquet"))
    assert manifest.output_uri == "s3://bucket/reports"
    assert resolve_location("gs://b/m.keras?x=1", str(tmp_path)) == "gs://b/m.keras?x=1"
    assert resolve_location("~/m.keras", "/base") == str(Path.home() / "m.keras")


def test_top_level_settings_flow_into_cases_and_cases_override_them(tmp_path: Path) -> None:
    _files(tmp_path, "models/a.keras", "data/a.parquet")
    doc = {"name": "n", "probes": ["config", "data"], "budget": {"epochs": 5}, "seed": 7,
           "execution": {"time_limit_s": 60},
           "cases": [_case(), _case(name="two", probes=["retrain"], seed=1, time_limit_s=9,
                                    training={"learning_rate": 0.1})]}
    one, two = parse_manifest(doc, base_dir=str(tmp_path)).cases(trust_models=True)
    assert one.probes == ("data", "config")  # registry order
    assert (one.budget.epochs, one.seed, one.time_limit_s, one.trust_model) == (5, 7, 60, True)
    assert (two.probes, two.seed, two.time_limit_s) == (("retrain",), 1, 9)
    assert two.training.learning_rate == 0.1
    assert Manifest.model_fields["probes"].default == ALL_PROBES


def test_duplicate_case_names_are_refused(tmp_path: Path) -> None:
    _files(tmp_path, "models/a.keras", "data/a.parquet")
    manifest = parse_manifest({"name": "n", "cases": [_case(), _case()]}, base_dir=str(tmp_path))
    with pytest.raises(ManifestError, match="'one' appears twice"):
        manifest.cases()


# ---------------------------------------------------------------- fleet globs


def test_fleet_expands_globs_with_a_data_template(tmp_path: Path) -> None:
    _files(tmp_path, "models/b.keras", "models/a.keras", "models/old/c.keras",
           "models/notes.txt", "data/a.parquet", "data/b.parquet", "data/c.parquet")
    doc = {"name": "n", "fleet": [{"models": "models/**/*.keras", "data": "data/{stem}.parquet",
                                   "label": "target", "probes": ["data"]}]}
    cases = parse_manifest(doc, base_dir=str(tmp_path)).cases()
    assert [c.name for c in cases] == ["a", "b", "c"]
    assert [Path(c.data).name for c in cases] == ["a.parquet", "b.parquet", "c.parquet"]
    assert cases[2].model == str(tmp_path / "models" / "old" / "c.keras")
    assert {c.label for c in cases} == {"target"} and {c.probes for c in cases} == {("data",)}


def test_fleet_name_template_separates_same_stems(tmp_path: Path) -> None:
    _files(tmp_path, "models/x/m.keras", "models/y/m.keras")
    fleet = {"models": "models/*/m.keras", "data": "data/{parent}.parquet"}
    with pytest.raises(ManifestError, match="appears twice"):
        parse_manifest({"name": "n", "fleet": [fleet]}, base_dir=str(tmp_path)).cases()
    fleet["name"] = "{parent}-{stem}"
    cases = parse_manifest({"name": "n", "fleet": [fleet]}, base_dir=str(tmp_path)).cases()
    assert [c.name for c in cases] == ["x-m", "y-m"]
    assert [Path(c.data).name for c in cases] == ["x.parquet", "y.parquet"]


def test_fleet_glob_without_matches_is_a_missing_files_error(tmp_path: Path) -> None:
    manifest = parse_manifest({"name": "n", "fleet": [{"models": "none/*.keras",
                                                       "data": "{stem}.csv"}]},
                              base_dir=str(tmp_path))
    with pytest.raises(ManifestFilesMissing, match=r"fleet\[0\]\.models: no files match") as info:
        manifest.cases()
    assert isinstance(info.value, FileNotFoundError)


def test_bad_template_names_the_allowed_fields(tmp_path: Path) -> None:
    _files(tmp_path, "m.keras")
    manifest = parse_manifest({"name": "n", "fleet": [{"models": "*.keras",
                                                       "data": "{steam}.csv"}]},
                              base_dir=str(tmp_path))
    with pytest.raises(ManifestError, match=r"\{stem\}, \{parent\} and \{name\}"):
        manifest.cases()


def test_expand_glob_on_file_uris(tmp_path: Path) -> None:
    _files(tmp_path, "a/x.keras", "a/b/y.keras")
    assert expand_glob(f"file://{tmp_path}/a/**/*.keras") == [
        f"file://{tmp_path}/a/b/y.keras", f"file://{tmp_path}/a/x.keras"]


# ---------------------------------------------------------------- case ids


def _ids(folder: Path, doc: dict[str, object]) -> dict[str, str]:
    return {c.name: c.case_id for c in load_manifest(_write(folder, doc)).cases()}


def test_case_ids_are_stable_and_follow_what_determines_the_result(tmp_path: Path) -> None:
    _files(tmp_path, "models/a.keras", "data/a.parquet", "models/b.keras", "data/b.parquet")
    doc = {"name": "n", "probes": ["data", "config"],
           "cases": [_case(), _case(name="two", model="models/b.keras", data="data/b.parquet")]}
    first = _ids(tmp_path, doc)
    assert first == _ids(tmp_path, doc)  # same inputs, same ids
    assert all(cid.startswith(name) for name, cid in first.items())

    (tmp_path / "models" / "b.keras").write_bytes(b"retrained")
    changed = _ids(tmp_path, doc)
    assert changed["one"] == first["one"] and changed["two"] != first["two"]

    for key, value in [("probes", ["data"]), ("budget", {"epochs": 3}), ("seed", 1)]:
        assert _ids(tmp_path, {**doc, key: value})["one"] != changed["one"], key
    trained = {**doc, "cases": [_case(training={"epochs": 2}), doc["cases"][1]]}
    assert _ids(tmp_path, trained)["one"] != changed["one"]
    limits = {**doc, "execution": {"time_limit_s": 5}, "output": "elsewhere"}
    assert _ids(tmp_path, limits) == changed  # how it runs is not what it computes


def test_case_ids_survive_moving_the_folder(tmp_path: Path) -> None:
    _files(tmp_path / "a", "models/a.keras", "data/a.parquet")
    doc = {"name": "n", "cases": [_case()]}
    before = _ids(tmp_path / "a", doc)
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert _ids(tmp_path / "b", doc) == before


def test_a_missing_file_still_gets_an_id(tmp_path: Path) -> None:
    (case,) = parse_manifest({"name": "n", "cases": [_case()]}, base_dir=str(tmp_path)).cases()
    assert case.case_id.startswith("one-") and not os.path.exists(case.model)


def test_file_case_ids_did_not_change_with_the_sources_interface(tmp_path: Path) -> None:
    """Ids of cases from files are what they were before fleet sources became modules (and a
    registry's fields joined CaseSpec): a resumed or diffed run still matches them."""
    (tmp_path / "models").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "models" / "x.keras").write_text("a\n")
    (tmp_path / "data" / "x.parquet").write_text("b\n")
    path = _write(tmp_path, {"name": "t", "cases": [
        {"model": "models/x.keras", "data": "data/x.parquet", "training": {"epochs": 3}}],
        "fleet": [{"models": "models/*.keras", "data": "data/{stem}.parquet",
                   "name": "f-{stem}", "inputs": {"a": "x"}}]})
    ids = [c.case_id for c in load_manifest(path).cases()]
    assert ids == ["x-3e4cfb0dd4e8", "f-x-6bf061d31daa"]


# ---------------------------------------------------------------- example manifests


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_manifests_validate(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.name and (manifest.entries or manifest.fleet)


def test_nightly_example_documents_every_top_level_key() -> None:
    text = (JOBS / "nightly.yaml").read_text()
    documented = {line.split(":")[0].lstrip("# ").strip() for line in text.splitlines()}
    for key in ("name", "output", "resources", "probes", "budget", "execution", "cases",
                "fleet", "publish"):
        assert key in documented, key
