"""Resume on a real local Ray re-runs a case whose report file is unreadable (issue 13).

A crash or a full disk can leave a truncated file under cases/; `--resume` must treat that
case as not done, say so in one warning naming the file, and write it again whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audit.fleet import FleetOptions, run_fleet
from audit.manifest.schema import load_manifest
from audit.reports import Store, query

pytestmark = pytest.mark.ray


def test_resume_reruns_a_case_whose_file_is_truncated(
        module_ray: str, tiny_files: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = {"name": "night", "output": "out", "resources": {"num_cpus": 1},
           "probes": ["data", "config"],
           "cases": [{"name": n, "model": str(tiny_files["model"]),
                      "data": str(tiny_files["data"])} for n in ("a", "b")]}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    manifest = load_manifest(tmp_path / "m.yaml")
    options = {"progress": False, "handle_signals": False, "run_id": "n1"}
    first = run_fleet(manifest, FleetOptions(**options))
    assert (first.n_ok, first.n_error) == (2, 0)

    out = tmp_path / "out"
    ids = {name: cid for name, cid in query(str(out), "select name, case_id from cases")[1]}
    broken = out / "cases" / "run_id=n1" / f"{ids['a']}.parquet"
    broken.write_bytes(broken.read_bytes()[:100])  # a crashed copy

    with caplog.at_level("WARNING", logger="audit.reports"):
        again = run_fleet(manifest, FleetOptions(**options, resume=True))
    assert (again.n_resumed, again.n_ok, again.n_error) == (1, 2, 0)
    assert any(str(broken) in r.getMessage() for r in caplog.records)
    store = Store(str(out))
    assert store.case_ids("n1") == set(ids.values()) and store.unreadable == []
    _, rows = query(str(out), "select name, status from cases order by name")
    assert rows == [("a", "ok"), ("b", "ok")]
