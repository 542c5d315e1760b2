"""Probe results -> findings, one primary fault, and a verdict.

Probes measure; this module judges. Counterfactual outcomes come first: a fault is *confirmed*
when the one change that addresses it restores skill on validation, beats the model's own
training config in most seeds by a clear margin, and beats the shipped model. Static signals
(dead units, gradient ratios, data scale, the loss/head check) come second: they pick among
faults whose counterfactuals succeed together, and stand alone only when nothing was confirmed.
A model that already does well is never blamed: its static oddities are `info` at most.
All thresholds live in `Thresholds`, named and documented.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit import faults
from audit.results import Finding, ProbeResult


@dataclass(frozen=True)
class Thresholds:
    """Every number the diagnosis uses, in one place."""

    flat_spread: float = 0.1  # output spread / label spread below this: the output is flat
    poor_skill: float = 0.5  # skill over the trivial predictor below this: underperforming
    clear_skill: float = 0.1  # a healthy model's skill is at least this (Deepchecks' gain bar)
    restored_skill: float = 0.3  # a counterfactual must reach at least this skill...
    restored_share: float = 0.6  # ...and this share of the best variant's skill
    min_effect: float = 0.2  # mean skill gain over the baseline (skills clipped to [-1, 1])
    min_win_share: float = 0.66  # share of seeds where the counterfactual wins by `win_margin`
    win_margin: float = 0.05
    min_gain_over_original: float = 0.15  # the change must also beat the shipped model
    dead_relu: float = 0.7  # share of a layer's ReLUs that never fire (DeepDiagnosis: 70%)
    saturated: float = 0.5  # share of a layer's sigmoid/tanh units in their flat tails
    vanishing_ratio: float = 1e-3  # first/last layer gradient norm ratio (AUTOTRAINER)
    exploding_ratio: float = 70.0  # first/last layer gradient norm ratio (AUTOTRAINER)
    exploding_norm: float = 1e3  # a gradient norm this large is explosive on its own
    imbalance: float = 0.1  # minority/majority class count (Deepchecks)
    input_scale_log10: float = 1.0  # inputs' RMS magnitude of 10 or more is unscaled
    input_std_ratio: float = 100.0  # feature stds this far apart are unscaled
    target_scale: float = 10.0  # |mean| or std of regression targets of 10 or more
    lr_decade: float = 10.0  # a learning rate this far from its family's typical one
    static_weight: float = 0.2  # how much static support adds to a counterfactual's effect
    priority_weight: float = 0.1  # root-cause order breaks near-ties


THRESHOLDS = Thresholds()

#: root causes first: when two changes work equally well, the earlier fault explains the later
PRIORITY = ("bad_data", "loss_mismatch", "unscaled_targets", "unscaled_inputs", "class_imbalance",
            "lr_too_high", "lr_too_low", "exploding_gradient", "dead_relu",
            "saturated_activations", "vanishing_gradient", "optimizer_stalled", "undertrained")

#: the fault each counterfactual addresses directly
NATIVE = {"standardize_inputs": "unscaled_inputs", "standardize_targets": "unscaled_targets",
          "drop_bad_rows": "bad_data", "fit_loss": "loss_mismatch",
          "class_weights": "class_imbalance", "lr_up": "lr_too_low", "lr_down": "lr_too_high",
          "adam": "optimizer_stalled", "clip_gradients": "exploding_gradient",
          "train_longer": "undertrained", "nonsaturating": "saturated_activations"}
#: faults a counterfactual also fixes, named only when static evidence points at them
ALTERNATES = {"lr_up": ("undertrained",),
              "lr_down": ("exploding_gradient", "dead_relu"),
              "adam": ("lr_too_low", "vanishing_gradient", "saturated_activations"),
              "nonsaturating": ("dead_relu", "vanishing_gradient"),
              "default_init": ("dead_relu", "exploding_gradient", "saturated_activations",
                               "vanishing_gradient"),
              "clip_gradients": ("lr_too_high",)}
#: faults whose static evidence is decisive on its own when the model underperforms
DEFINITIVE = ("bad_data", "loss_mismatch")


@dataclass
class Diagnosis:
    verdict: str
    primary_fault: str | None
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Outcome:
    """What one counterfactual did, compared seed by seed with the baseline."""

    name: str
    change: str
    skills: list[float]
    baseline: list[float]
    effect: float
    win_share: float
    effect_size: float
    mean_skill: float
    restored: bool
    confirmed: bool

    def evidence(self, original: float) -> dict[str, Any]:
        return {"counterfactual": self.name, "change": self.change,
                "skill_with_change": _round(self.skills), "skill_own_config": _round(self.baseline),
                "skill_shipped_model": round(original, 4), "effect": round(self.effect, 4),
                "effect_size_d": round(self.effect_size, 2), "seeds_won": self.win_share}


def _round(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def _clip(value: float) -> float:
    """Skill for comparisons: NaN (diverged) counts as the trivial predictor, floor at -1."""
    return 0.0 if not math.isfinite(value) else max(-1.0, min(1.0, value))


def _family(name: str) -> str:
    return name.split("_x")[0] if name.startswith("lr_") else name


# ---------------------------------------------------------------- counterfactual outcomes


def counterfactual_outcomes(retrain: ProbeResult, original: float,
                            th: Thresholds = THRESHOLDS) -> list[Outcome]:
    """Each counterfactual's outcome against the baseline, seed by seed."""
    variants = retrain.details.get("variants", {})
    per_seed: dict[str, dict[str, float]] = {}
    for key, value in retrain.metrics.items():
        name, _, seed = key.partition(".skill.seed")
        if seed:
            per_seed.setdefault(name, {})[seed] = _clip(value)
    base_by_seed = per_seed.get("baseline")
    if not base_by_seed:
        return []
    best = max(float(np.mean(list(v.values()))) for v in per_seed.values())
    outcomes = []
    for name, by_seed in per_seed.items():
        if name == "baseline":
            continue
        common = [seed for seed in by_seed if seed in base_by_seed]  # a raced-out plan: one
        skills = [by_seed[seed] for seed in common]
        base = [base_by_seed[seed] for seed in common]
        if not common:
            continue
        diffs = np.array(skills) - np.array(base)
        effect = float(diffs.mean())
        spread = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        d = effect / max(spread, 0.05)
        wins = float(np.mean(diffs > th.win_margin))
        mean_skill = float(np.mean(skills))
        restored = mean_skill >= max(th.restored_skill, th.restored_share * best)
        confirmed = (restored and effect >= th.min_effect and wins >= th.min_win_share
                     and mean_skill - _clip(original) >= th.min_gain_over_original)
        change = variants.get(name, {}).get("change", name)
        outcomes.append(Outcome(name, change, skills, base, effect, wins, d, mean_skill,
                                restored, confirmed))
    return outcomes


# ---------------------------------------------------------------- static support


def _m(results: dict[str, ProbeResult], probe: str, metric: str) -> float:
    result = results.get(probe)
    if result is None or result.status != "ok":
        return float("nan")
    return result.get(metric)


def static_support(results: dict[str, ProbeResult],
                   th: Thresholds = THRESHOLDS) -> dict[str, tuple[float, dict[str, Any]]]:
    """For each fault: how strongly the cheap probes point at it (0..1), and the numbers."""
    m = lambda probe, metric: _m(results, probe, metric)  # noqa: E731
    out: dict[str, tuple[float, dict[str, Any]]] = {}

    def put(fault: str, support: float, **evidence: Any) -> None:
        if support > 0:
            out[fault] = (min(support, 1.0), {k: _jsonable(v) for k, v in evidence.items()})

    bad = m("data", "bad_rows")
    malformed, constant = m("data", "malformed_cells"), m("data", "constant_columns")
    if bad > 0 or malformed > 0:
        put("bad_data", 1.0, bad_rows=bad, bad_row_fraction=m("data", "bad_row_fraction"),
            nan_cells=m("data", "nan_cells"), inf_cells=m("data", "inf_cells"),
            malformed_cells=malformed)
    elif constant > 0:
        put("bad_data", 0.3, constant_columns=constant)
    if m("config", "loss_fits_labels") == 0:
        detail = results["config"].details
        put("loss_mismatch", 1.0, problem=detail.get("loss_problem"), loss=detail.get("loss"),
            output_activation=detail.get("output_activation"),
            output_units=m("config", "output_units"))
    scale, ratio = m("data", "feature_scale_log10"), m("data", "feature_std_ratio")
    if scale >= th.input_scale_log10 or ratio >= th.input_std_ratio:
        put("unscaled_inputs", 1.0, feature_scale_log10=scale, feature_std_ratio=ratio,
            feature_abs_max=m("data", "feature_abs_max"), features=m("data", "features"))
    elif scale >= th.input_scale_log10 / 2 or ratio >= math.sqrt(th.input_std_ratio):
        put("unscaled_inputs", 0.5, feature_scale_log10=scale, feature_std_ratio=ratio,
            features=m("data", "features"))
    label = max(abs(m("data", "label_mean")), m("data", "label_std"))
    if label >= th.target_scale:
        put("unscaled_targets", 1.0, label_mean=m("data", "label_mean"),
            label_std=m("data", "label_std"))
    imbalance = m("data", "imbalance_ratio")
    if imbalance <= th.imbalance:
        put("class_imbalance", 1.0, imbalance_ratio=imbalance,
            minority_fraction=m("data", "minority_fraction"))
    elif imbalance <= 3 * th.imbalance:
        put("class_imbalance", 0.5, imbalance_ratio=imbalance)
    lr_log = m("config", "lr_log10_vs_typical")
    decade = math.log10(th.lr_decade)
    if lr_log <= -decade + 1e-9:
        put("lr_too_low", 1.0 if lr_log <= -1.5 * decade else 0.5,
            learning_rate=m("config", "learning_rate"), log10_vs_typical=lr_log)
    nonfinite = m("gradients", "nonfinite_weights")
    if lr_log >= decade - 1e-9:
        put("lr_too_high", 1.0 if lr_log >= 1.5 * decade or nonfinite > 0 else 0.5,
            learning_rate=m("config", "learning_rate"), log10_vs_typical=lr_log)
    dead = m("activations", "dead_fraction_max")
    if dead >= th.dead_relu:
        put("dead_relu", 1.0, dead_fraction_max=dead,
            dead_fraction_mean=m("activations", "dead_fraction_mean"))
    saturated = m("activations", "saturated_fraction_max")
    if saturated >= th.saturated:
        put("saturated_activations", 1.0, saturated_fraction_max=saturated,
            saturated_fraction_mean=m("activations", "saturated_fraction_mean"))
    grad_ratio, depth = m("gradients", "grad_ratio_first_last"), m("gradients", "depth")
    if grad_ratio < th.vanishing_ratio and depth >= 3:
        put("vanishing_gradient", 1.0, grad_ratio_first_last=grad_ratio, depth=depth,
            grad_norm_first=m("gradients", "grad_norm_first"))
    elif grad_ratio < th.vanishing_ratio * 10 and depth >= 3:
        put("vanishing_gradient", 0.5, grad_ratio_first_last=grad_ratio, depth=depth)
    grad_max = m("gradients", "grad_norm_max")
    if depth >= 3 and (grad_ratio > th.exploding_ratio or grad_max > th.exploding_norm
                       or nonfinite > 0):
        put("exploding_gradient", 1.0, grad_ratio_first_last=grad_ratio, grad_norm_max=grad_max,
            nonfinite_weights=nonfinite, depth=depth)
    if m("config", "optimizer_is_sgd") == 1:
        put("optimizer_stalled", 0.5, optimizer="sgd", learning_rate=m("config", "learning_rate"))
    epochs = m("config", "train_epochs")
    if math.isfinite(epochs) and epochs <= 5:
        put("undertrained", 1.0, train_epochs=epochs)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return round(value, 6)
    return value


# ---------------------------------------------------------------- the judgement


@dataclass
class Candidate:
    fault: str
    score: float
    confirmed: bool
    outcome: Outcome | None
    support: float
    static: dict[str, Any]


def rank_candidates(outcomes: list[Outcome], support: dict[str, tuple[float, dict[str, Any]]],
                    underperforming: bool, flat: bool,
                    th: Thresholds = THRESHOLDS) -> list[Candidate]:
    """Faults ranked by how well the evidence explains them, best first.

    Static signals alone blame a fault only when the model underperforms and retraining did
    not speak against it: either no counterfactual ran at all (the retrain probe was skipped or
    not applicable), or the output is flat. A fault whose own change was tried and failed is
    ruled out."""
    by_fault: dict[str, Candidate] = {}

    def offer(fault: str, score: float, confirmed: bool, outcome: Outcome | None) -> None:
        sup, static = support.get(fault, (0.0, {}))
        score += th.static_weight * sup + th.priority_weight * (1 - PRIORITY.index(fault) / 13)
        best = by_fault.get(fault)
        if best is None or (confirmed, score) > (best.confirmed, best.score):
            by_fault[fault] = Candidate(fault, score, confirmed, outcome, sup, static)

    for outcome in outcomes:
        if not outcome.confirmed:
            continue
        family = _family(outcome.name)
        native = NATIVE.get(family)
        if native:
            offer(native, outcome.effect, True, outcome)
        for fault in ALTERNATES.get(family, ()):
            if support.get(fault, (0.0, {}))[0] >= 0.5:
                offer(fault, outcome.effect, True, outcome)
    if underperforming:
        for fault in DEFINITIVE:  # decisive static evidence stands even without a retrain
            if support.get(fault, (0.0, {}))[0] >= 1.0:
                offer(fault, 1.0, fault in by_fault and by_fault[fault].confirmed,
                      by_fault[fault].outcome if fault in by_fault else None)
    ranked = sorted(by_fault.values(), key=lambda c: (c.fault in DEFINITIVE and c.support >= 1,
                                                      c.confirmed, c.score), reverse=True)
    retrained = bool(outcomes)
    ruled_out = {NATIVE.get(_family(o.name)) for o in outcomes if not o.confirmed}
    if not any(c.confirmed for c in ranked) and underperforming and (flat or not retrained):
        statics = [Candidate(f, s + th.priority_weight * (1 - PRIORITY.index(f) / 13), False,
                             None, s, ev)
                   for f, (s, ev) in support.items()
                   if s >= 1.0 and f not in by_fault and f not in ruled_out]
        ranked += sorted(statics, key=lambda c: c.score, reverse=True)
    return ranked


def _skill_name(task: str) -> str:
    return "R²" if task == "regression" else "balanced-accuracy gain"


def recommendation(candidate: Candidate, task: str, original: float) -> str:
    """The fault's fix, followed by the numbers that show it works (when retraining did)."""
    fix = faults.get(candidate.fault).fix
    o = candidate.outcome
    if o is None:
        return fix
    n = len(o.skills)
    wins = round(o.win_share * n)
    return (f"{fix} With {o.change}, the retrained clone reached {_skill_name(task)} "
            f"{o.mean_skill:.2f} against {float(np.mean(o.baseline)):.2f} with the model's own "
            f"config ({wins}/{n} seeds better; the shipped model scores {_clip(original):.2f}).")


def diagnose(results: dict[str, ProbeResult], task: str,
             th: Thresholds = THRESHOLDS) -> Diagnosis:
    """The verdict, the primary fault (root cause) and every finding, from probe results."""
    skill = _m(results, "sensitivity", "skill")
    if not math.isfinite(skill):
        skill = _m(results, "retrain", "original.skill")
    spread = _m(results, "sensitivity", "spread_ratio")
    if not math.isfinite(spread):
        spread = _m(results, "retrain", "original.spread")
    distinct = _m(results, "sensitivity", "distinct_predicted_classes")
    nan_out = _m(results, "sensitivity", "nan_output_fraction")
    measured = math.isfinite(skill) or math.isfinite(spread) or nan_out > 0
    flat = measured and ((math.isfinite(spread) and spread < th.flat_spread) or distinct == 1
                         or nan_out > 0 or not math.isfinite(skill))
    poor = (not measured) or flat or skill < th.poor_skill
    support = static_support(results, th)
    retrain = results.get("retrain")
    outcomes = (counterfactual_outcomes(retrain, skill, th)
                if retrain is not None and retrain.status == "ok" else [])
    ranked = rank_candidates(outcomes, support, poor, flat, th)
    findings: list[Finding] = []
    primary = ranked[0] if ranked else None
    for i, cand in enumerate(ranked):
        severity = "critical" if i == 0 and (flat or cand.confirmed) else "warning"
        confidence = (0.5 + 0.45 * cand.outcome.win_share * min(1.0, cand.outcome.effect / 0.5)
                      if cand.confirmed and cand.outcome else 0.25 + 0.3 * cand.support)
        evidence = {**cand.static, "model_skill": _jsonable(skill),
                    "model_spread_ratio": _jsonable(spread)}
        if cand.outcome is not None:
            evidence.update(cand.outcome.evidence(skill))
        findings.append(Finding(cand.fault, severity, round(confidence, 3), cand.confirmed,
                                "retrain" if cand.outcome else _probe_of(cand.fault),
                                evidence, recommendation(cand, task, skill)))
    blamed = {f.fault for f in findings}
    for fault, (sup, static) in support.items():  # what was seen but not blamed, for the record
        if fault not in blamed and sup >= 1.0:
            findings.append(Finding(fault, "info", round(0.2 * sup, 3), False, _probe_of(fault),
                                    static, faults.get(fault).fix))
    if flat:
        verdict = "flat"
        primary_fault = primary.fault if primary else "flat_output"
        if primary is None:
            findings.insert(0, Finding("flat_output", "critical", 0.9, False, "sensitivity",
                                       {"model_skill": _jsonable(skill),
                                        "model_spread_ratio": _jsonable(spread),
                                        "ruled_out": [o.name for o in outcomes]},
                                       faults.get("flat_output").fix))
    elif primary is not None and poor:
        verdict, primary_fault = "impaired", primary.fault
    elif math.isfinite(skill) and skill < th.clear_skill:
        # no skill is never healthy, even when no probe can name a cause
        verdict, primary_fault = "impaired", "no_skill"
        findings.insert(0, Finding("no_skill", "critical", 0.8, False, "sensitivity",
                                   {"model_skill": _jsonable(skill),
                                    "model_spread_ratio": _jsonable(spread),
                                    "not_tried": _not_tried(results),
                                    "ruled_out": [o.name for o in outcomes]},
                                   faults.get("no_skill").fix))
    else:
        verdict, primary_fault = "healthy", None
        findings = [dataclasses.replace(f, severity="info") for f in findings]
    return Diagnosis(verdict, primary_fault, findings)


def _not_tried(results: dict[str, ProbeResult]) -> str:
    """Why the counterfactuals could not speak, in a few words ('' when they ran)."""
    retrain = results.get("retrain")
    if retrain is None:
        return "retraining was not asked for (the retrain probe is off)"
    if retrain.status != "ok":
        return f"retraining could not run: {retrain.error}"
    if retrain.get("counterfactuals_skipped") == 1:
        return "retraining was skipped: the model did well on the retrain validation rows"
    if retrain.get("time_budget_hit") == 1:
        return "the retrain time budget ran out before every change was tried"
    return ""


_PROBE_OF = {"bad_data": "data", "class_imbalance": "data", "unscaled_inputs": "data",
             "unscaled_targets": "data", "loss_mismatch": "config", "lr_too_low": "config",
             "lr_too_high": "config", "optimizer_stalled": "config", "undertrained": "config",
             "dead_relu": "activations", "saturated_activations": "activations",
             "vanishing_gradient": "gradients", "exploding_gradient": "gradients",
             "flat_output": "sensitivity", "no_skill": "sensitivity"}


def _probe_of(fault: str) -> str:
    return _PROBE_OF.get(fault, "retrain")
