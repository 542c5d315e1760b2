"""Models, data and reports on an object store: a manifest whose `output`, models and data
are s3:// URIs runs with `audit run`, against a real S3-speaking server (moto) on loopback,
and the report reads back with the same layout, through pyarrow and DuckDB.

Credentials and the endpoint come from the environment, as on a cluster: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL (which pyarrow reads).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import moto_server

from audit import jobs

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("no_shared_ray")]

BIN = Path(sys.executable).parent
BUCKET = "flatline-test"


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 (its own process group, stopped by pid) with a bucket."""
    folder = tmp_path_factory.mktemp("moto")  # its log and request recording land here
    with moto_server(folder, BUCKET) as port:
        yield {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }


def _s3(env: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _recorded_writes(env: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path?query) of every request the server saw since recording started."""
    import json
    import urllib.request
    from urllib.parse import unquote, urlsplit

    url = f"{env['AWS_ENDPOINT_URL']}/moto-api/recorder/download-recording"
    with urllib.request.urlopen(url, timeout=30) as response:
        entries = [json.loads(line) for line in response.read().decode().splitlines() if line]
    out = []
    for entry in entries:
        parts = urlsplit(entry["url"])
        query = f"?{parts.query}" if parts.query else ""
        out.append((entry["method"], unquote(parts.path) + query))
    return out


def _start_recording(env: dict[str, str]) -> None:
    import urllib.request

    base = env["AWS_ENDPOINT_URL"]
    for action in ("stop-recording", "reset-recording", "start-recording"):
        request = urllib.request.Request(f"{base}/moto-api/recorder/{action}", method="POST")
        urllib.request.urlopen(request, timeout=30).close()


def _upload_fleet(env: dict[str, str], tmp: Path, prefix: str, n: int) -> None:
    """A tiny Keras model per case and its Parquet data, uploaded under `prefix`."""
    import keras
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp / "tiny.keras")
    s3 = _s3(env)
    rng = np.random.default_rng(1)
    for i in range(n):
        x = rng.normal(size=(64, 3))
        pq.write_table(pa.table({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2],
                                 "y": x @ [1.0, 2.0, 3.0]}), tmp / f"m{i}.parquet")
        s3.upload_file(str(tmp / "tiny.keras"), BUCKET, f"{prefix}/models/m{i}.keras")
        s3.upload_file(str(tmp / f"m{i}.parquet"), BUCKET, f"{prefix}/data/m{i}.parquet")


def test_run_with_models_data_and_reports_on_s3(
    s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload_fleet(s3_env, tmp_path, "in", 2)
    output = f"s3://{BUCKET}/reports"
    manifest = tmp_path / "s3.yaml"
    manifest.write_text(
        f"name: on-s3\noutput: {output}\nresources: {{num_cpus: 1}}\nprobes: [data, config]\n"
        f"fleet:\n  - models: s3://{BUCKET}/in/models/*.keras\n"
        f"    data: s3://{BUCKET}/in/data/{{stem}}.parquet\n    label: y\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env.update(s3_env, HOME=str(tmp_path))  # an embedded Ray may write ~/.ray/auth_token
    _start_recording(s3_env)
    result = subprocess.run([str(BIN / "audit"), "run", str(manifest), "--run-id", "s3run",
                             "--no-progress"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    keys = sorted(o["Key"] for o in _s3(s3_env).list_objects_v2(
        Bucket=BUCKET, Prefix="reports/")["Contents"])
    case_ids = sorted(k.rsplit("/", 1)[1] for k in keys if k.startswith("reports/cases/"))
    assert len(case_ids) == 2
    expected = ["reports/runs/run_id=s3run/run.parquet"] + [
        f"reports/{table}/run_id=s3run/{cid}"
        for table in ("cases", "findings", "metrics") for cid in case_ids]
    assert keys == sorted(expected), "same layout as on disk, no temporary objects left"
    assert not _s3(s3_env).list_multipart_uploads(Bucket=BUCKET).get("Uploads"), \
        "a write left an unfinished multipart upload"
    writes = _recorded_writes(s3_env)
    for key in keys:  # each file appears once, whole: one PutObject or one completed upload
        path = f"/{BUCKET}/{key}"
        finished = [w for w in writes if (w[1] == path and w[0] == "PUT")
                    or (w[0] == "POST" and w[1].startswith(f"{path}?uploadId="))]
        assert len(finished) == 1, (key, finished)
    run_row = max(i for i, w in enumerate(writes) if w[1].startswith(
        f"/{BUCKET}/reports/runs/run_id=s3run/run.parquet") and "partNumber" not in w[1])
    last_case = max(i for i, w in enumerate(writes)
                    if w[0] in ("PUT", "POST") and w[1].startswith(f"/{BUCKET}/reports/cases/"))
    assert run_row > last_case, "the run row is written last"

    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    import duckdb
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(output)
    cases = ds.dataset(f"{root}/cases", filesystem=fs, format="parquet",
                       partitioning="hive").to_table()
    rows = duckdb.sql("select run_id, name, model, status from cases order by name").fetchall()
    assert rows == [("s3run", "m0", f"s3://{BUCKET}/in/models/m0.keras", "ok"),
                    ("s3run", "m1", f"s3://{BUCKET}/in/models/m1.keras", "ok")], cases
    runs = ds.dataset(f"{root}/runs", filesystem=fs, format="parquet",
                      partitioning="hive").to_table().to_pylist()
    assert [(r["run_id"], r["status"], r["n_ok"]) for r in runs] == [("s3run", "finished", 2)]
    counts = jobs.case_counts(output, "s3run", total=2)
    assert counts == jobs.CaseCounts(done=2, failed=0, total=2, report="finished")

    query = subprocess.run([str(BIN / "audit"), "query", output,
                            "select run_id, count(*) as n from cases group by 1"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert query.returncode == 0, query.stderr
    assert "s3run" in query.stdout and "2" in query.stdout
    report = subprocess.run([str(BIN / "audit"), "report", output, "--run", "s3run"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "m0" in report.stdout and "m1" in report.stdout


def test_diff_report_html_and_unreadable_objects_on_s3(
    s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audit diff`, `report` (terminal and --html) and `query` read an object store like a
    folder, and skip an object that is not Parquet with one warning naming it."""
    from report_data import T0, case, fleet, write_run

    from audit.reports import Store, diff_runs, run_query, summarize
    from audit.reports.html import write_html

    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    output = f"s3://{BUCKET}/nights"
    store = Store(output)
    write_run(store, "r1", fleet(4, seed=0))
    tonight = fleet(4, seed=0, started=T0 + 86_400)  # the same fleet, but for one case
    tonight[0] = case("model-0000", "flat", __import__("numpy").random.default_rng(2),
                      started=T0 + 86_400)
    write_run(store, "r2", tonight, started=T0 + 86_400)
    junk = "nights/cases/run_id=r2/half-written.parquet"
    _s3(s3_env).put_object(Bucket=BUCKET, Key=junk, Body=b"PAR1 cut short")

    result = diff_runs(output, "r1", "r2")
    assert [(c.kind, c.name) for c in result.changes] == [("regression", "model-0000")]
    assert [u.path for u in result.unreadable] == [f"{BUCKET}/{junk}"]
    (r2,) = summarize(output, "r2")
    assert r2.n_cases == 4 and r2.since is not None and len(r2.unreadable) == 1
    assert run_query(output, "select count(*) from cases").rows == [(8,)]
    page = write_html(output, "r2", tmp_path / "r2.html")
    assert (page.n_cases, page.n_unreadable) == (4, 1)
    assert "half-written.parquet" in (tmp_path / "r2.html").read_text()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env.update(s3_env, HOME=str(tmp_path))
    gate = subprocess.run([str(BIN / "audit"), "diff", output, "--last", "nightly", "--format",
                           "csv"], env=env, capture_output=True, text=True, timeout=120)
    assert gate.returncode == 1, gate.stderr
    assert gate.stdout.splitlines()[1].startswith("regression,model-0000,healthy,flat")
    assert gate.stderr.count("warning: skipped unreadable file") == 1
    assert "half-written.parquet" in gate.stderr
    unknown = subprocess.run([str(BIN / "audit"), "diff", output, "r1", "r9"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "no run 'r9'" in unknown.stderr
