"""Chaos on an object store: a fault-injecting HTTP proxy on 127.0.0.1 in front of a real
S3-speaking server (moto) answers 503 SlowDown and 500 InternalError for a while. Report
writes retry through it, and nothing is lost or written twice.
"""

from __future__ import annotations

import http.client
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import moto_server

from audit.evidence.results import CaseReport
from audit.io.locations import S3_MAX_ATTEMPTS
from audit.reports import RunRow, Store

BIN = Path(sys.executable).parent
BUCKET = "flatline-chaos"
FAULTS = [  # what S3 answers a busy client, in turn
    (503, "SlowDown", "Please reduce your request rate."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
]


class FaultyProxy(ThreadingHTTPServer):
    """Forwards every request to `upstream`, except that the next `faults` PUTs are answered
    with an S3 error (and not forwarded). Counts what it injected and forwarded."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream, self.faults, self.injected, self.forwarded_puts = upstream, 0, 0, 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take_fault(self, method: str) -> tuple[int, str, str] | None:
        with self.lock:
            if method != "PUT":
                return None
            if self.faults <= 0:
                self.forwarded_puts += 1
                return None
            self.faults -= 1
            self.injected += 1
            return FAULTS[self.injected % len(FAULTS)]


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyProxy

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        fault = self.server.take_fault(self.command)
        if fault is not None:
            status, code, message = fault
            payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                       f"<Message>{message}</Message><RequestId>chaos</RequestId></Error>"
                       ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            for key, value in self.headers.items():
                if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                    upstream.putheader(key, value)
            if chunked:  # as the client sent it (S3's aws-chunked bodies come this way)
                upstream.putheader("Transfer-Encoding", "chunked")
                body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + \
                    b"0\r\n\r\n"
            else:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "content-length", "connection",
                                       "server", "date"):
                    self.send_header(key, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A moto S3 server on 127.0.0.1 (own process group, stopped by pid) with a bucket."""
    with moto_server(tmp_path_factory.mktemp("moto-chaos"), BUCKET) as port:
        yield port


@pytest.fixture
def proxy(moto: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyProxy]:
    """The faulty proxy, and the environment pointing S3 clients at it."""
    server = FaultyProxy(("127.0.0.1", moto))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": server.url}.items():
        monkeypatch.setenv(key, value)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _keys(moto: int, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto}", region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _report(i: int) -> CaseReport:
    now = 1_700_000_000.0 + i
    return CaseReport(case_id=f"case{i}-0123456789ab", name=f"case{i}", model="m.keras",
                      data="d.parquet", status="ok", verdict="healthy", started_at=now,
                      finished_at=now + 1, duration_s=1.0)


def test_the_faults_are_real_without_retries(proxy: FaultyProxy) -> None:
    """Control: a client that does not retry fails on the proxy's first fault."""
    proxy.faults = 1
    fs = pafs.S3FileSystem(retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
                           allow_delayed_open=True, endpoint_override=proxy.url)
    with pytest.raises(OSError, match=r"SlowDown|INTERNAL_FAILURE|internal error"), \
            fs.open_output_stream(f"{BUCKET}/control/x.parquet") as out:
        out.write(b"x")
    assert proxy.injected == 1


def test_report_writes_retry_through_503_and_500_and_nothing_is_lost_or_doubled(
        proxy: FaultyProxy, moto: int) -> None:
    """Six cases and a run row written while the store answers errors for a while: every
    write lands once, whole, and the Store reads every case back."""
    store = Store(f"s3://{BUCKET}/reports")
    n_faults = 4  # one write needs 5 attempts (pyarrow's default gives it 3)
    assert n_faults + 1 < S3_MAX_ATTEMPTS
    proxy.faults = n_faults
    for i in range(6):
        store.write_case("busy-night", _report(i))
        if i == 2:
            proxy.faults = 3  # a second burst, mid-run
    store.write_run("busy-night", RunRow(
        name="chaos", status="finished", manifest="m.yaml", output=store.output,
        started_at=1_700_000_000.0, finished_at=1_700_000_100.0, n_cases=6, n_ok=6, n_error=0,
        n_timeout=0, n_skipped=0, n_missing=0, concurrency=1, ray_address=None, settings={},
        package_version="test"))
    assert proxy.injected == n_faults + 3 and proxy.faults == 0
    keys = _keys(moto, "reports/")
    expected = sorted(
        [f"reports/{t}/run_id=busy-night/case{i}-0123456789ab.parquet"
         for t in ("cases", "findings", "metrics") for i in range(6)]
        + ["reports/runs/run_id=busy-night/run.parquet"])
    assert keys == expected
    assert proxy.forwarded_puts == len(expected)  # each object went up exactly once
    for key in keys:
        pq.read_metadata(f"{BUCKET}/{key}", filesystem=store.fs)  # whole
    assert store.case_status_by_id("busy-night") == {
        f"case{i}-0123456789ab": "ok" for i in range(6)}
