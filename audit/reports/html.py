"""One run as one self-contained HTML page: what broke, why, with the evidence drawn.

Charts are Vega-Lite specs (built in `charts.py`) drawn in the browser by Vega-Embed,
whose JavaScript (Vega, Vega-Lite, Vega-Embed) comes bundled offline from the
`vl-convert-python` package and is inlined once per page: the page needs no network, so it
works as an e-mail attachment or from a bucket link.

A big run stays usable: the header charts draw on load, each case's charts only when its
section is opened (their specs wait as JSON in the page), and cases' data is compact.
The layout is `page.html.j2` (jinja2, autoescaped) with `page.css` and `page.js` beside it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.evidence import keys
from audit.reports.charts import (
    CaseMetrics,
    case_charts,
    healthy_band,
    loads,
    sensitivity_points,
    summary_charts,
)
from audit.reports.columns import SCHEMA_VERSION, finite
from audit.reports.diff import RunDiff, diff_with, previous_run, with_previous
from audit.reports.query import connect
from audit.reports.store import ReportError, Store
from audit.reports.style import VERDICT_ORDER, verdict_color
from audit.reports.summary import recommendation, reused_line, verdict_sql_order
from audit.util.text import duration

__all__ = ["CasePage", "Page", "render_html", "vega_bundle", "write_html"]

HERE = Path(__file__).parent


@dataclass
class Page:
    """What `write_html` wrote."""

    run_id: str
    n_cases: int
    size_bytes: int
    n_unreadable: int
    path: Path | None = None


@dataclass
class CasePage:
    """One case's section: its row in the table, its text, and its charts (drawn lazily)."""

    case_id: str
    name: str
    verdict: str
    status: str
    fault: str | None
    recommendation: str
    error: str | None
    facts: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)
    skill: float | None = None
    charts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    change: str | None = None  # since the previous run
    reused: str | None = None  # "reused from RUN (date)" when this run reused the case

    @property
    def color(self) -> str:
        return verdict_color(self.verdict).hex

    def charts_json(self) -> str:
        return _script_json(self.charts)


# ---------------------------------------------------------------- the page


def _by_case(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row[1:])
    return grouped


def _fmt_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if value is None else str(value)


def _evidence(text: str | None) -> dict[str, str]:
    """A finding's evidence as short `name: value` strings (numbers rounded)."""
    shown = {}
    evidence = loads(text)
    for key, value in sorted(evidence.items()) if isinstance(evidence, dict) else []:
        if isinstance(value, float):
            shown[key] = f"{value:.4g}"
        elif isinstance(value, list):
            shown[key] = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                                   for v in value[:12])
        else:
            shown[key] = str(value)
    return shown


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<` at all (so no `</script` or `<!--`)."""
    text = json.dumps(finite(value), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one offline script (a few seconds, once per process)."""
    import vl_convert

    return vl_convert.javascript_bundle().replace("</script", "<\\/script")


def _versions(run: dict[str, Any] | None) -> dict[str, str]:
    import vl_convert

    versions = {"flatline-audit": (run or {}).get("package_version") or "unknown",
                "report schema": SCHEMA_VERSION,
                "vega-lite": vl_convert.get_vegalite_versions()[-1]}
    return versions


def _collect(con: Any, run_id: str) -> tuple[dict[str, Any] | None, list[CasePage], dict, dict]:
    cur = con.execute("select * from runs where run_id = ?", [run_id])
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    run = dict(zip(names, row, strict=True)) if row else None
    cases = con.execute(
        "select case_id, name, model, data, task, status, verdict, primary_fault, error, "
        "started_at, duration_s, attempts, node, node_id, worker, output, model_format, "
        "reused_from, finished_at from cases "
        f"where run_id = ? order by {verdict_sql_order()}, name, case_id", [run_id]).fetchall()
    findings = _by_case(con.execute(
        "select case_id, fault, severity, confidence, confirmed, probe, evidence, recommendation "
        "from findings where run_id = ? order by case_id, confidence desc, fault",
        [run_id]).fetchall())
    charted = [k.probe for k in (keys.Sensitivity.SKILL, keys.Retrain.ORIGINAL_SKILL,
                                 keys.Activations.DEAD_MAX, keys.Gradients.NORM_MAX)]
    metrics = _by_case(con.execute(
        "select case_id, probe, metric, value, detail from metrics where run_id = ? and "
        "(list_contains(?, probe) or metric = ?)", [run_id, charted, keys.DETAILS]).fetchall())
    measured = {case_id: CaseMetrics(metrics.get(case_id, [])) for case_id, *_ in cases}
    band = healthy_band([(c[6], sensitivity_points(measured[c[0]])) for c in cases])
    pages = []
    for (case_id, name, model, data, task, status, verdict, fault, error, started, took_s,
         attempts, node, node_id, worker, head, model_format, reused_from, finished) in cases:
        m = measured[case_id]
        charts, notes = case_charts(m, band)
        top = m.details.get("sensitivity", {}).get("most_influential_features")
        counts = m.details.get("data", {}).get("class_counts")
        reused = reused_line(reused_from, finished)
        facts = {"audited": reused, "model": model, "model format": model_format, "data": data,
                 "output": head,
                 "task": task,
                 "started": _fmt_time(started), "took": duration(took_s),
                 "attempts": attempts, "node": node, "node id": node_id, "worker": worker,
                 "most influential features": ", ".join(top) if top else None,
                 "class counts": ", ".join(f"{k}: {v}" for k, v in counts.items())
                 if counts else None}
        pages.append(CasePage(
            case_id=case_id, name=name, verdict=verdict, status=status, fault=fault,
            recommendation=recommendation(status, fault, error), error=error,
            facts={k: v for k, v in facts.items() if v not in (None, "")},
            findings=[{"fault": f, "severity": sev, "confidence": conf, "confirmed": ok,
                       "probe": probe, "evidence": _evidence(ev), "recommendation": rec}
                      for f, sev, conf, ok, probe, ev, rec in findings.get(case_id, [])],
            skill=m.of("sensitivity").get("skill"), charts=charts, notes=notes,
            reused=reused))
    verdicts: dict[str, int] = {}
    fault_counts: dict[str, int] = {}
    for p in pages:
        verdicts[p.verdict] = verdicts.get(p.verdict, 0) + 1
        if p.fault:
            fault_counts[p.fault] = fault_counts.get(p.fault, 0) + 1
    fault_counts = dict(sorted(fault_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return run, pages, verdicts, fault_counts


def _latest_run(con: Any, known: list[str]) -> str:
    row = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()
    return row[0] if row else known[-1]


def render_html(output: str | Store, run_id: str | None = None) -> tuple[str, Page]:
    """The page for `run_id` (default: the latest run under `output`)."""
    import jinja2

    store = output if isinstance(output, Store) else Store(output)
    known = store.known_runs(run_id)
    if run_id is None:
        con = connect(store, runs=())
        try:
            run_id = _latest_run(con, known)
        finally:
            con.close()
    con = connect(store, runs=with_previous(store, run_id))
    try:
        run, cases, verdicts, fault_counts = _collect(con, run_id)
        before = previous_run(con, run_id)
        since: RunDiff | None = diff_with(con, before, run_id) if before else None
    finally:
        con.close()
    if since is not None:
        by_name = {c.name: c for c in cases}
        for change in since.changes:
            if change.name in by_name:
                by_name[change.name].change = f"{change.kind}: {change.reason}"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    address = (run or {}).get("ray_address")
    text = env.get_template("page.html.j2").render(
        run_id=run_id, run=run or {}, cases=cases, since=since,
        where=f"cluster at {address}" if address else "local (an embedded Ray)",
        started=_fmt_time((run or {}).get("started_at") or
                          min((c.facts.get("started") for c in cases), default=None)),
        took=duration((run or {}).get("duration_s")),
        versions=_versions(run), verdicts=verdicts, fault_counts=fault_counts,
        verdict_names=[v for v in VERDICT_ORDER if v in verdicts]
        + sorted(set(verdicts) - set(VERDICT_ORDER)),
        unreadable=store.unreadable,
        summary_json=_script_json(summary_charts(verdicts, fault_counts)),
        css=(HERE / "page.css").read_text(), js=(HERE / "page.js").read_text(),
        vega=vega_bundle(),
    )
    page = Page(run_id, len(cases), len(text.encode()), len(store.unreadable))
    return text, page


def write_html(output: str | Store, run_id: str | None, path: str | Path) -> Page:
    """Write the page for `run_id` (default: the latest run) to the local file `path`."""
    text, page = render_html(output, run_id)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror or exc}") from None
    page.path = target
    return page
