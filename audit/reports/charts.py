"""What a case's charts draw, and the charts themselves as Vega-Lite specs (plain dicts).

The points come from a case's `metrics` rows (numbers and the probes' `details` JSON); the
specs carry their data inline, so the page can draw each one on its own, when asked.
"""

from __future__ import annotations

import json
import math
from typing import Any

from audit.evidence import keys
from audit.reports.style import VERDICT_COLORS, verdict_color, verdict_rank

__all__ = [
    "CaseMetrics",
    "case_charts",
    "counterfactual_chart",
    "counterfactual_points",
    "healthy_band",
    "layer_chart",
    "layer_rows",
    "loads",
    "sensitivity_chart",
    "sensitivity_points",
    "summary_charts",
]

MIN_GRAD_NORM = 1e-12  # zero norms are drawn here (a log axis has no zero)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


class CaseMetrics:
    """One case's metrics and probe details, looked up by probe and name."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.values: dict[str, dict[str, float | None]] = {}
        self.details: dict[str, Any] = {}
        for probe, metric, value, detail in rows:
            if metric == keys.DETAILS:
                self.details[probe] = loads(detail)
            else:
                self.values.setdefault(probe, {})[metric] = _number(value)

    def of(self, probe: str) -> dict[str, float | None]:
        return self.values.get(probe, {})


def sensitivity_points(m: CaseMetrics) -> list[dict[str, float]]:
    """Response (output change / label spread) at each noise scale."""
    points = []
    for metric, value in m.of(keys.Sensitivity.SKILL.probe).items():
        scale = keys.parse_response_noise(metric)
        if scale is not None and value is not None:
            points.append({"scale": scale, "response": value})
    return sorted(points, key=lambda p: p["scale"])


def counterfactual_points(m: CaseMetrics) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Skill per change and seed, and the reference lines (own config, shipped model)."""
    retrain = m.of(keys.Retrain.ORIGINAL_SKILL.probe)
    variants = m.details.get(keys.Retrain.ORIGINAL_SKILL.probe, {}).get(keys.VARIANTS, {})
    seeds_of: dict[str, list[tuple[int, str]]] = {}
    for metric in retrain:
        parsed = keys.parse_seed_skill(metric)
        if parsed is not None:
            seeds_of.setdefault(parsed[0], []).append((parsed[1], metric))
    points = []
    for plan, seeds in seeds_of.items():
        info = variants.get(plan, {})
        stopped, losses = info.get(keys.STOPPED) or [], info.get(keys.FINAL_LOSS) or []
        for i, (_, metric) in enumerate(sorted(seeds)):  # seed order, as trained
            if retrain[metric] is None:
                continue
            points.append({
                "change": info.get(keys.CHANGE) or plan, "plan": plan, "seed": f"seed {i + 1}",
                "skill": retrain[metric],
                "stopped": stopped[i] if i < len(stopped) else None,
                "final_loss": _number(losses[i]) if i < len(losses) else None,
                # the most any seed ran
                "epochs": retrain.get(keys.plan_metric(plan, keys.PLAN_EPOCHS)),
            })
    refs = {}
    own = [p["skill"] for p in points if p["plan"] == keys.BASELINE]
    if own:
        refs["own config (mean)"] = sum(own) / len(own)
    shipped = retrain.get(keys.Retrain.ORIGINAL_SKILL.metric)
    if shipped is not None:
        refs["shipped model"] = shipped
    return points, refs


def layer_rows(m: CaseMetrics) -> list[dict[str, Any]]:
    """Per layer, in model order: dead or saturated share, and gradient norm."""
    rows: dict[str, dict[str, Any]] = {}
    probes = (keys.Activations.DEAD_MAX.probe, keys.Gradients.NORM_MAX.probe)
    for probe in probes:
        for metric, value in m.of(probe).items():
            parsed = keys.parse_layer_metric(metric)
            if parsed and value is not None:
                kind, layer = parsed
                rows.setdefault(layer, {"layer": layer})[kind] = value
    order: list[str] = []
    for probe in probes:
        for name in m.details.get(probe, {}).get(keys.LAYERS, []):
            if name not in order:
                order.append(name)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows.values(), key=lambda r: (rank.get(r["layer"], len(rank)), r["layer"]))


# ---------------------------------------------------------------- charts (Vega-Lite)


def _whole_ticks(top: int, most: int = 6) -> list[int]:
    """Whole-number ticks from 0 past `top`, at most about `most` of them (counts of cases)."""
    step = max(1, -(-top // (most - 1)))
    return list(range(0, top + step, step))


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
                  "axis": {"values": _whole_ticks(max(counts.values(), default=1)),
                           "format": "d"}},
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
         "axis": {"values": sorted({p["scale"] for p in points + band})},
         "title": "input noise (x each feature's std)"}
    layers: list[dict[str, Any]] = []
    if band:
        layers.append({
            "data": {"values": band},
            # the band's edge is drawn too: one healthy case makes a band of no height
            "mark": {"type": "area", "opacity": 0.25, "color": VERDICT_COLORS["healthy"].hex,
                     "line": {"color": VERDICT_COLORS["healthy"].hex}, "tooltip": True},
            "encoding": {"x": x, "y": {"field": "low", "type": "quantitative"},
                         "y2": {"field": "high"}},
        })
    layers.append({
        "data": {"values": points},
        "mark": {"type": "line", "point": True, "tooltip": True, "color": "#1f3b73"},
        "encoding": {"x": x, "y": {"field": "response", "type": "quantitative",
                                   "title": "output change / label spread"}},
    })
    subtitle = ("green: the range of this run's healthy cases" if band
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
                      "subtitle": "lines: the model's own config (mean over seeds) and "
                                  "the shipped model"},
            "width": 300, "height": {"step": 22}, "layer": layers,
            "resolve": {"scale": {"color": "independent"}}}


def layer_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    order = [r["layer"] for r in rows]
    y = {"field": "layer", "type": "nominal", "sort": order, "title": None}
    shares = [{"layer": r["layer"], "kind": kind.removesuffix("_fraction"), "share": r[kind]}
              for r in rows for kind in (keys.DEAD_FRACTION, keys.SATURATED_FRACTION) if kind in r]
    norms = [{"layer": r["layer"], "grad_norm": max(r[keys.GRAD_NORM], MIN_GRAD_NORM),
              "measured": r[keys.GRAD_NORM]} for r in rows if keys.GRAD_NORM in r]
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


def case_charts(m: CaseMetrics, band: list[dict[str, float]]) -> tuple[list[dict], list[str]]:
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
        skipped = m.details.get(keys.Retrain.SKIPPED.probe, {}).get(keys.SKIPPED_DETAIL)
        notes.append(f"no counterfactuals: {skipped}" if skipped
                     else "no counterfactuals (the retrain probe did not run)")
    layers = layer_rows(m)
    if layers:
        charts.append({"kind": "layers", "spec": layer_chart(layers)})
    return charts, notes
