"""File digests are computed once per change (`audit.io.digests`): a second expansion of an
unchanged fleet, in a new process, reads no file contents, and its ids are the ones hashing
gives; a replaced file (a new object at the same key included) is seen as changed.

Reads are counted by wrapping the one function that reads a file's bytes (`_update`), the
failure-injection style the suite allows; every file is real."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from audit.io import digests
from audit.manifest.schema import load_manifest

DAY = 86400


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A cache of this test's own, no digest remembered in this process, and the paths whose
    bytes were read."""
    monkeypatch.setenv("FLATLINE_CACHE_DIR", str(tmp_path / "cache"))
    seen: list[str] = []
    real = digests._update

    def counting(sha: object, fs: object, path: str) -> None:
        seen.append(path)
        real(sha, fs, path)

    monkeypatch.setattr(digests, "_update", counting)
    monkeypatch.setattr(digests, "_DIGESTS", {})
    return seen


def _fleet(folder: Path, n: int = 4) -> Path:
    """`n` model files, `n` data files and a SavedModel-like folder, written a day ago."""
    for i in range(n):
        for kind, suffix in (("models", "keras"), ("data", "parquet")):
            path = folder / kind / f"m{i}.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{kind} {i} ".encode() * 1000)
    saved = folder / "models" / "saved"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "v.index").write_bytes(b"weights")
    (folder / "data" / "saved.parquet").write_bytes(b"rows")
    _backdate(folder)
    doc = {"name": "nightly", "probes": ["data"],
           "fleet": [{"models": "models/*.keras", "data": "data/{stem}.parquet"}],
           "cases": [{"name": "saved", "model": "models/saved", "data": "data/saved.parquet"}]}
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    return folder / "m.yaml"


def _backdate(folder: Path, seconds: float = DAY) -> None:
    when = time.time() - seconds
    for path in folder.rglob("*"):
        os.utime(path, (when, when))


def _ids(manifest: Path) -> dict[str, str]:
    return {c.name: c.case_id for c in load_manifest(manifest).cases()}


def _new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a second `audit validate` starts with: nothing remembered in memory."""
    monkeypatch.setattr(digests, "_DIGESTS", {})
    for con in digests._CONNECTIONS.values():
        if con is not None:
            con.close()
    monkeypatch.setattr(digests, "_CONNECTIONS", {})


def test_a_second_expansion_of_an_unchanged_fleet_reads_no_file(
        reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _fleet(tmp_path / "fleet")
    first = _ids(manifest)
    assert len(reads) == 4 * 2 + 2 + 1  # every file's bytes once (the folder's two files)
    monkeypatch.setenv("FLATLINE_DIGEST_CACHE", "off")  # hashing alone gives these ids
    _new_process(monkeypatch)
    assert _ids(manifest) == first
    monkeypatch.delenv("FLATLINE_DIGEST_CACHE")

    _new_process(monkeypatch)
    reads.clear()
    assert _ids(manifest) == first
    assert reads == []
    assert (tmp_path / "cache" / digests.CACHE_FILE).exists()


def test_a_replaced_file_is_read_again_and_changes_its_id_only(
        reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "fleet"
    manifest = _fleet(folder)
    first = _ids(manifest)
    model = folder / "models" / "m1.keras"
    model.write_bytes(model.read_bytes().replace(b"1", b"9"))  # same size, new bytes
    index = folder / "models" / "saved" / "variables" / "v.index"
    index.write_bytes(b"retrained")
    for path in (model, index):  # written hours ago: past the racy window, still changed
        when = time.time() - DAY / 2
        os.utime(path, (when, when))
    _new_process(monkeypatch)
    reads.clear()
    second = _ids(manifest)
    changed = {name for name in first if first[name] != second[name]}
    assert changed == {"m1", "saved"}
    assert sorted(Path(p).name for p in reads) == ["m1.keras", "saved_model.pb", "v.index"]


def test_a_file_written_this_moment_is_not_trusted_to_the_cache(
        reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's racy-clean rule: a write in the clock tick of the hash could go unseen."""
    manifest = _fleet(tmp_path / "fleet", n=1)
    fresh = tmp_path / "fleet" / "data" / "m0.parquet"
    fresh.write_bytes(b"just written")
    _ids(manifest)
    _new_process(monkeypatch)
    reads.clear()
    _ids(manifest)
    assert [Path(p).name for p in reads] == ["m0.parquet"]


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.delenv("FLATLINE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert digests.cache_folder() == str(tmp_path / "xdg" / "flatline")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert digests.cache_folder() == str(tmp_path / "home" / ".cache" / "flatline")
    monkeypatch.setenv("FLATLINE_DIGEST_CACHE", "off")
    assert digests.cache_folder() is None


def test_an_unusable_cache_folder_costs_only_the_hashing(
        reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FLATLINE_CACHE_DIR", str(blocker))
    manifest = _fleet(tmp_path / "fleet", n=1)
    assert _ids(manifest)
    assert "digest cache" in caplog.text and "cannot be used" in caplog.text


def test_object_stores_without_an_identity_say_why() -> None:
    assert "generation" in (digests.no_identity_reason("gs://b/m.keras") or "")
    assert digests.no_identity_reason("/data/m.keras") is None
    assert digests.no_identity_reason("s3://b/m.keras") is None  # boto3 reads the ETag


def test_s3_objects_are_known_by_their_etag(reads: list[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A new object at the same key (same size) is seen as changed; an unchanged one is not
    read again."""
    import boto3
    from conftest import moto_server

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_server(tmp_path, "fleet") as port:
        endpoint = f"127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
        s3.put_object(Bucket="fleet", Key="m.keras", Body=b"model one")
        uri = f"s3://fleet/m.keras?endpoint_override={endpoint}&scheme=http&region=us-east-1"
        first = digests.content_digest(uri)
        assert len(reads) == 1
        _new_process(monkeypatch)
        assert digests.content_digest(uri) == first and len(reads) == 1
        s3.put_object(Bucket="fleet", Key="m.keras", Body=b"model two")
        _new_process(monkeypatch)
        assert digests.content_digest(uri) != first and len(reads) == 2
