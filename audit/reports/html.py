"""One run as one self-contained HTML page: what broke, why, with the evidence drawn.

Charts are Vega-Lite specs built here as plain dicts and drawn in the browser by Vega-Embed,
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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.reports.diff import RunDiff, diff_with, previous_run, with_previous
from audit.reports.query import connect
from audit.reports.schema import SCHEMA_VERSION, finite
from audit.reports.store import ReportError, Store
from audit.reports.style import VERDICT_COLORS, VERDICT_ORDER, verdict_color, verdict_rank
from audit.reports.summary import recommendation, verdict_sql_order

__all__ = ["CasePage", "Page", "case_charts", "render_html", "write_html"]

HERE = Path(__file__).parent
_NOISE = re.compile(r"^response_noise_(?P<scale>[0-9.eE+-]+)$")
_SEED = re.compile(r"^(?P<plan>.+)\.skill\.seed(?P<seed>\d+)$")
_LAYER = re.compile(r"^(?P<kind>dead_fraction|saturated_fraction|grad_norm)\.(?P<layer>.+)$")
MIN_GRAD_NORM = 1e-12  # zero norms are drawn here (a log axis has no zero)


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

    @property
    def color(self) -> str:
        return verdict_color(self.verdict).hex

    def charts_json(self) -> str:
        return _script_json(self.charts)


# ---------------------------------------------------------------- data


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def _by_case(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row[1:])
    return grouped


class _Metrics:
    """One case's metrics and probe details, looked up by probe and name."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.values: dict[str, dict[str, float | None]] = {}
        self.details: dict[str, Any] = {}
        for probe, metric, value, detail in rows:
            if metric == "details":
                self.details[probe] = _loads(detail)
            else:
                self.values.setdefault(probe, {})[metric] = _number(value)

    def of(self, probe: str) -> dict[str, float | None]:
        return self.values.get(probe, {})


def sensitivity_points(m: _Metrics) -> list[dict[str, float]]:
    """Response (output change / label spread) at each noise scale."""
    points = []
    for metric, value in m.of("sensitivity").items():
        match = _NOISE.match(metric)
        if match and value is not None:
            points.append({"scale": float(match["scale"]), "response": value})
    return sorted(points, key=lambda p: p["scale"])


def counterfactual_points(m: _Metrics) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Skill per change and seed, and the reference lines (own config, shipped model)."""
    variants = m.details.get("retrain", {}).get("variants", {})
    points = []
    for metric, value in m.of("retrain").items():
        match = _SEED.match(metric)
        if not match or value is None:
            continue
        plan = match["plan"]
        info = variants.get(plan, {})
        seeds = [k for k in m.of("retrain") if k.startswith(f"{plan}.skill.seed")]
        i = sorted(seeds, key=lambda k: int(k.rsplit("seed", 1)[1])).index(metric)
        stopped, losses = info.get("stopped") or [], info.get("final_loss") or []
        points.append({
            "change": info.get("change") or plan, "plan": plan, "seed": f"seed {i + 1}",
            "skill": value,
            "stopped": stopped[i] if i < len(stopped) else None,
            "final_loss": _number(losses[i]) if i < len(losses) else None,
            "epochs": m.of("retrain").get(f"{plan}.epochs"),  # the most any seed ran
        })
    refs = {}
    own = [p["skill"] for p in points if p["plan"] == "baseline"]
    if own:
        refs["own config (mean)"] = sum(own) / len(own)
    shipped = m.of("retrain").get("original.skill")
    if shipped is not None:
        refs["shipped model"] = shipped
    return points, refs


def layer_rows(m: _Metrics) -> list[dict[str, Any]]:
    """Per layer, in model order: dead or saturated share, and gradient norm."""
    rows: dict[str, dict[str, Any]] = {}
    for probe in ("activations", "gradients"):
        for metric, value in m.of(probe).items():
            match = _LAYER.match(metric)
            if match and value is not None:
                row = rows.setdefault(match["layer"], {"layer": match["layer"]})
                row[match["kind"]] = value
    order: list[str] = []
    for probe in ("activations", "gradients"):
        for name in m.details.get(probe, {}).get("layers", []):
            if name not in order:
                order.append(name)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows.values(), key=lambda r: (rank.get(r["layer"], len(rank)), r["layer"]))


# ---------------------------------------------------------------- charts (Vega-Lite)


def _bar_counts(counts: dict[str, int], field_name: str, title: str,
                colors: dict[str, str] | None = None) -> dict[str, Any]:
    values = [{field_name: k, "cases": n} for k, n in counts.items()]
    color: dict[str, Any] = {"value": "#4c78a8"}
    if colors:
        color = {"field": field_name, "legend": None,
                 "scale": {"domain": list(colors), "range": list(colors.values())}}
    return {
        "title": title, "width": 320, "height": {"step": 22},
        "data": {"values": values}, "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": field_name, "type": "nominal", "title": None,
                  "sort": list(counts)},
            "x": {"field": "cases", "type": "quantitative", "title": "cases",
                  "axis": {"tickMinStep": 1}},
            "color": color,
        },
    }


def summary_charts(verdicts: dict[str, int], fault_counts: dict[str, int]) -> list[dict]:
    ordered = dict(sorted(verdicts.items(), key=lambda kv: verdict_rank(kv[0])))
    colors = {v: verdict_color(v).hex for v in ordered}
    charts = [{"id": "chart-verdicts",
               "spec": _bar_counts(ordered, "verdict", "cases by verdict", colors)}]
    if fault_counts:
        charts.append({"id": "chart-faults",
                       "spec": _bar_counts(fault_counts, "fault", "cases by primary fault")})
    return charts


def sensitivity_chart(points: list[dict[str, float]], band: list[dict[str, float]]
                      ) -> dict[str, Any]:
    x = {"field": "scale", "type": "quantitative", "scale": {"type": "log"},
         "title": "input noise (x each feature's std)"}
    layers: list[dict[str, Any]] = []
    if band:
        layers.append({
            "data": {"values": band},
            "mark": {"type": "area", "opacity": 0.25, "color": VERDICT_COLORS["healthy"].hex,
                     "tooltip": True},
            "encoding": {"x": x, "y": {"field": "low", "type": "quantitative"},
                         "y2": {"field": "high"}},
        })
    layers.append({
        "data": {"values": points},
        "mark": {"type": "line", "point": True, "tooltip": True, "color": "#1f3b73"},
        "encoding": {"x": x, "y": {"field": "response", "type": "quantitative",
                                   "title": "output change / label spread"}},
    })
    subtitle = ("green band: healthy cases of this run" if band
                else "no healthy case in this run to draw the healthy band from")
    return {"title": {"text": "Sensitivity: response vs input noise", "subtitle": subtitle},
            "width": 300, "height": 200, "layer": layers}


def counterfactual_chart(points: list[dict[str, Any]], refs: dict[str, float]
                         ) -> dict[str, Any]:
    x = {"field": "skill", "type": "quantitative", "title": "validation skill (1 = perfect, "
         "0 = trivial predictor)"}
    layers: list[dict[str, Any]] = [{
        "data": {"values": points},
        "mark": {"type": "point", "filled": True, "size": 70, "tooltip": True},
        "encoding": {"x": x, "y": {"field": "change", "type": "nominal", "title": None},
                     "color": {"field": "seed", "type": "nominal", "title": "retrained"},
                     "tooltip": [{"field": "change"}, {"field": "seed"},
                                 {"field": "skill", "format": ".3f"}, {"field": "stopped"},
                                 {"field": "final_loss", "format": ".4g"},
                                 {"field": "epochs", "title": "epochs (most of any seed)"}]},
    }]
    if refs:
        layers.append({
            "data": {"values": [{"reference": k, "skill": v} for k, v in refs.items()]},
            "mark": {"type": "rule", "strokeDash": [4, 3], "strokeWidth": 2},
            "encoding": {"x": x, "strokeDash": {"field": "reference", "type": "nominal",
                                                 "title": "reference"},
                         "tooltip": [{"field": "reference"},
                                     {"field": "skill", "format": ".3f"}]},
        })
    return {"title": {"text": "Counterfactuals: skill per change and seed",
                      "subtitle": "dashed: the model's own config and the shipped model"},
            "width": 300, "height": {"step": 22}, "layer": layers,
            "resolve": {"scale": {"color": "independent"}}}


def layer_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    order = [r["layer"] for r in rows]
    y = {"field": "layer", "type": "nominal", "sort": order, "title": None}
    shares = [{"layer": r["layer"], "kind": kind.removesuffix("_fraction"), "share": r[kind]}
              for r in rows for kind in ("dead_fraction", "saturated_fraction") if kind in r]
    norms = [{"layer": r["layer"], "grad_norm": max(r["grad_norm"], MIN_GRAD_NORM),
              "measured": r["grad_norm"]} for r in rows if "grad_norm" in r]
    panels: list[dict[str, Any]] = []
    if shares:
        panels.append({
            "data": {"values": shares}, "width": 200, "height": {"step": 20},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {"y": y, "x": {"field": "share", "type": "quantitative",
                                       "scale": {"domain": [0, 1]},
                                       "title": "dead or saturated share"},
                         "color": {"field": "kind", "type": "nominal", "title": None,
                                   "scale": {"domain": ["dead", "saturated"],
                                             "range": ["#d62728", "#ff7f0e"]}}},
        })
    if norms:
        panels.append({
            "data": {"values": norms}, "width": 200, "height": {"step": 20},
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {"y": y, "x": {"field": "grad_norm", "type": "quantitative",
                                       "scale": {"type": "log"}, "title": "gradient norm"},
                         "tooltip": [{"field": "layer"},
                                     {"field": "measured", "format": ".3g"}]},
        })
    return {"title": "Per layer", "hconcat": panels, "resolve": {"scale": {"color": "independent"}}}


def healthy_band(cases: list[tuple[str, list[dict[str, float]]]]) -> list[dict[str, float]]:
    """The lowest and highest response at each noise scale among the run's healthy cases."""
    by_scale: dict[float, list[float]] = {}
    for verdict, points in cases:
        if verdict == "healthy":
            for p in points:
                by_scale.setdefault(p["scale"], []).append(p["response"])
    return [{"scale": s, "low": min(v), "high": max(v)} for s, v in sorted(by_scale.items())]


def case_charts(m: _Metrics, band: list[dict[str, float]]) -> tuple[list[dict], list[str]]:
    """The case's chart specs, and a note for each chart it has no data for."""
    charts, notes = [], []
    points = sensitivity_points(m)
    if points:
        charts.append({"kind": "sensitivity", "spec": sensitivity_chart(points, band)})
    else:
        notes.append("no sensitivity measurements (the probe did not run or failed)")
    cf_points, refs = counterfactual_points(m)
    if cf_points:
        charts.append({"kind": "counterfactual", "spec": counterfactual_chart(cf_points, refs)})
    else:
        skipped = m.details.get("retrain", {}).get("skipped")
        notes.append(f"no counterfactuals: {skipped}" if skipped
                     else "no counterfactuals (the retrain probe did not run)")
    layers = layer_rows(m)
    if layers:
        charts.append({"kind": "layers", "spec": layer_chart(layers)})
    return charts, notes


# ---------------------------------------------------------------- the page


def _fmt_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if value is None else str(value)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _evidence(text: str | None) -> dict[str, str]:
    """A finding's evidence as short `name: value` strings (numbers rounded)."""
    shown = {}
    evidence = _loads(text)
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
        "started_at, duration_s, attempts, node, node_id, worker, output from cases "
        f"where run_id = ? order by {verdict_sql_order()}, name, case_id", [run_id]).fetchall()
    findings = _by_case(con.execute(
        "select case_id, fault, severity, confidence, confirmed, probe, evidence, recommendation "
        "from findings where run_id = ? order by case_id, confidence desc, fault",
        [run_id]).fetchall())
    metrics = _by_case(con.execute(
        "select case_id, probe, metric, value, detail from metrics where run_id = ? and "
        "(probe in ('sensitivity', 'retrain', 'activations', 'gradients') or metric = "
        "'details')", [run_id]).fetchall())
    measured = {case_id: _Metrics(metrics.get(case_id, [])) for case_id, *_ in cases}
    band = healthy_band([(c[6], sensitivity_points(measured[c[0]])) for c in cases])
    pages = []
    for (case_id, name, model, data, task, status, verdict, fault, error, started, duration,
         attempts, node, node_id, worker, head) in cases:
        m = measured[case_id]
        charts, notes = case_charts(m, band)
        top = m.details.get("sensitivity", {}).get("most_influential_features")
        counts = m.details.get("data", {}).get("class_counts")
        facts = {"model": model, "data": data, "output": head, "task": task,
                 "started": _fmt_time(started), "took": _fmt_duration(duration),
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
            skill=m.of("sensitivity").get("skill"), charts=charts, notes=notes))
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
    known = store.run_ids()
    if not known:
        raise ReportError(f"{store.output}: no reports here (expected runs/ and cases/ folders)")
    if run_id is not None and run_id not in known:
        raise ReportError(f"{store.output}: no run {run_id!r}; runs are {known}")
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
        took=_fmt_duration((run or {}).get("duration_s")),
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
