"""The HTML page in a real browser: Debian's chromium driven by Playwright's Python API.

The page is opened from a file:// URL with the network off. It must log no console error,
draw its charts (SVG of non-zero size), open a case from its table row and draw that case's
charts, and narrow the table when filtered. A screenshot is saved (set FLATLINE_SCREENSHOT to
a path, e.g. docs/report.png, to keep it). Without chromium the tests skip locally and fail
in CI (CI=true), so a CI machine that lost the browser cannot pass quietly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from report_data import T0, case, fleet, write_run

from audit.reports import Store
from audit.reports.html import render_html, write_html

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} not found: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Last night (r1) and tonight (r2) of `nightly`: in r2 one healthy model went flat and
    one flat model was fixed."""
    out = tmp_path_factory.mktemp("html") / "reports"
    store = Store(str(out))
    write_run(store, "r1", fleet(8, seed=0))
    tonight = fleet(8, seed=0, started=T0 + 86_400)
    rng = np.random.default_rng(5)
    tonight[0] = case("model-0000", "flat", rng, started=T0 + 86_400)  # was healthy
    tonight[1] = case("model-0001", "healthy", rng, started=T0 + 86_400)  # was flat
    write_run(store, "r2", tonight, started=T0 + 86_400)
    return out


def _open(browser: object, page_file: Path) -> tuple[object, list[str]]:
    context = browser.new_context(viewport={"width": 1000, "height": 1000}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    return page, errors


def _svg_size(page: object, selector: str) -> tuple[float, float]:
    page.wait_for_selector(f"{selector} svg", state="attached")
    box = page.locator(f"{selector} svg").first.bounding_box()
    return (box["width"], box["height"]) if box else (0.0, 0.0)


def test_the_page_draws_filters_and_opens_cases(browser: object, two_nights: Path,
                                                tmp_path: Path) -> None:
    target = tmp_path / "r2.html"
    info = write_html(str(two_nights), "r2", target)
    assert (info.run_id, info.n_cases) == ("r2", 8)
    page, errors = _open(browser, target)
    for chart in ("#chart-verdicts", "#chart-faults"):
        width, height = _svg_size(page, chart)
        assert width > 50 and height > 20, chart
    shot = tmp_path / "report.png"
    page.evaluate("window.scrollTo(0, 0)")  # the header, the charts, what changed, the table
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("FLATLINE_SCREENSHOT"):  # regenerate the README's screenshot
        shutil.copy(shot, os.environ["FLATLINE_SCREENSHOT"])

    rows = page.locator("#cases tbody tr")
    assert rows.count() == 8
    assert rows.first.get_attribute("data-verdict") == "flat"  # worst first
    page.select_option("#filter-verdict", "healthy")
    visible = page.locator("#cases tbody tr:visible")
    assert visible.count() == 2  # model-0001 (fixed) and model-0004; model-0000 went flat
    assert {r.get_attribute("data-verdict") for r in visible.all()} == {"healthy"}
    assert page.locator("#shown").inner_text() == "showing 2 of 8"
    page.select_option("#filter-verdict", "")
    page.select_option("#filter-fault", "lr_too_low")
    assert {r.get_attribute("data-fault") for r in page.locator(
        "#cases tbody tr:visible").all()} == {"lr_too_low"}
    page.select_option("#filter-fault", "")

    page.click("#cases th:nth-child(2)")  # sort by name, ascending
    names = [a.inner_text() for a in page.locator("#cases tbody tr td:nth-child(2)").all()]
    assert names == sorted(names)

    assert "regression" in page.locator("#since").inner_text()
    page.click("#cases tbody tr[data-name='model-0000'] a")
    section = page.locator("details#case-model-0000-00000000")
    # the click's hash change opens the section in a handler: wait for it (a loaded machine
    # ran the handler after a bare read), then read it
    page.wait_for_selector("details#case-model-0000-00000000[open]", timeout=10_000)
    assert section.get_attribute("open") is not None
    page.wait_for_function(
        "document.querySelectorAll('#case-model-0000-00000000 .case-charts svg').length == 3")
    for kind in ("sensitivity", "counterfactual", "layers"):
        width, height = _svg_size(page, f"#case-model-0000-00000000 .chart-{kind}")
        assert width > 50 and height > 50, kind
    assert "healthy -> flat" in section.inner_text()

    assert errors == []


def test_a_500_case_page_stays_small_and_draws_cases_only_when_opened(
        browser: object, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    write_run(Store(str(out)), "big", fleet(500, seed=3))
    target = tmp_path / "big.html"
    info = write_html(str(out), "big", target)
    assert info.n_cases == 500
    assert target.stat().st_size < 10_000_000, target.stat().st_size
    page, errors = _open(browser, target)
    _svg_size(page, "#chart-verdicts")
    assert page.locator("#cases tbody tr").count() == 500
    assert page.locator(".case-charts svg").count() == 0  # nothing drawn before opening
    last = page.locator("details.case").last
    last.locator("summary").click()
    page.wait_for_function("document.querySelectorAll('.case-charts svg').length > 0")
    assert page.locator(".case-charts .chart").count() >= 1
    assert errors == []


def test_the_page_escapes_what_the_report_holds(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    evil = case("m", "healthy", np.random.default_rng(0))
    evil.name = "<script>alert(1)</script>"
    evil.metrics[-1].detail = '{"class_counts": {"</script><b>": 1}}'
    write_run(Store(str(out)), "r1", [evil])
    text, _ = render_html(str(out), "r1")
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    assert "</script><b>" not in text


def test_cli_writes_the_page_of_a_run_or_of_the_latest(two_nights: Path, tmp_path: Path
                                                       ) -> None:
    from typer.testing import CliRunner

    from audit.cli.app import app

    runner = CliRunner(env={"COLUMNS": "300"})
    wrote = runner.invoke(app, ["report", str(two_nights), "--run", "r1", "--html",
                                str(tmp_path / "a" / "r1.html")])
    assert wrote.exit_code == 0, wrote.output
    assert "(run r1, 8 cases" in wrote.output
    assert "nightly <span class=\"muted\">r1</span>" in (tmp_path / "a" / "r1.html").read_text()
    latest = runner.invoke(app, ["report", str(two_nights), "--html", str(tmp_path / "l.html")])
    assert latest.exit_code == 0 and "(run r2, 8 cases" in latest.output
    unknown = runner.invoke(app, ["report", str(two_nights), "--run", "r9", "--html",
                                  str(tmp_path / "x.html")])
    assert unknown.exit_code == 2 and "no run 'r9'" in unknown.output
    assert not (tmp_path / "x.html").exists()


def test_chart_points_come_from_the_metrics_and_details() -> None:
    from audit.reports.charts import (
        CaseMetrics,
        counterfactual_points,
        healthy_band,
        layer_rows,
        sensitivity_points,
    )

    report = case("m", "flat", np.random.default_rng(0))
    m = CaseMetrics([(r.probe, r.metric, r.value, r.detail) for r in report.metrics])
    assert [p["scale"] for p in sensitivity_points(m)] == [0.01, 0.1, 1.0]
    points, refs = counterfactual_points(m)
    assert len(points) == 9 and set(refs) == {"own config (mean)", "shipped model"}
    adam = [p for p in points if p["plan"] == "adam"]
    assert [p["seed"] for p in adam] == ["seed 1", "seed 2", "seed 3"]
    assert [p["stopped"] for p in adam] == ["epochs", "early_success", "epochs"]
    assert adam[0]["change"] == "the Adam optimizer" and adam[2]["final_loss"] is None
    rows = layer_rows(m)
    assert [r["layer"] for r in rows] == ["dense", "dense_1", "dense_2"]  # model order
    assert rows[0] == {"layer": "dense", "dead_fraction": 0.2, "grad_norm": 0.0}
    band = healthy_band([("healthy", [{"scale": 0.1, "response": 0.2}]),
                         ("healthy", [{"scale": 0.1, "response": 0.4}]),
                         ("flat", [{"scale": 0.1, "response": 0.0}])])
    assert band == [{"scale": 0.1, "low": 0.2, "high": 0.4}]
