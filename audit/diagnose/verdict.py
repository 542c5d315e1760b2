"""The judgement of one case: probe results -> findings, one primary fault, and a verdict.

Probes measure; this module judges. Counterfactual outcomes come first: a fault is *confirmed*
when the change that addresses it restores skill on validation, beats the model's own
training config in most seeds by a clear margin, and beats the shipped model. Each retrain plan
declares the fault it tests; a change that moves two things (Adam and its rate) is attributed by
its control. When no single change is confirmed, a confirmed pair names the part that did more
alone as the primary fault and its partner as a contributing one. Static signals (dead units,
gradient ratios, data scale, labels, the loss/head check) come second: they pick among faults
whose counterfactuals succeed together, and stand alone only when nothing was confirmed.
A model that already does well is never blamed: its static oddities are `info` at most; a model
without skill is never healthy. Every fault's rule, thresholds and counterfactuals live in its
unit in `audit.faults`; this module is generic over them and names no fault. The judgement's
own numbers live in `Thresholds`, named and documented.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit import faults
from audit.diagnose.counterfactuals import (
    clip_skill,
    counterfactual_outcomes,
    jsonable,
    static_support,
)
from audit.diagnose.ranking import Candidate, rank_candidates
from audit.diagnose.thresholds import THRESHOLDS, Thresholds
from audit.evidence.keys import Retrain, Sensitivity
from audit.evidence.results import Finding, ProbeResult

__all__ = ["Diagnosis", "diagnose"]


@dataclass
class Diagnosis:
    verdict: str
    primary_fault: str | None
    findings: list[Finding] = field(default_factory=list)


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
            f"config ({wins}/{n} seeds better; the shipped model scores "
            f"{clip_skill(original):.2f}).")


def confidence(cand: Candidate, th: Thresholds = THRESHOLDS) -> float:
    """How sure the finding is (calibrated on the zoo: of findings at 0.8 or more, at least
    80% name the scenario's fault; the table is in benchmarks/README.md)."""
    o = cand.outcome
    if cand.confirmed and o is not None:
        if cand.contributing:
            return th.confidence_contributing
        return th.confidence_confirmed + th.confidence_per_effect * o.win_share * min(
            1.0, o.effect / th.full_effect)
    return th.confidence_static + th.confidence_per_support * cand.support


def diagnose(results: dict[str, ProbeResult], task: str,
             th: Thresholds = THRESHOLDS) -> Diagnosis:
    """The verdict, the primary fault (root cause) and every finding, from probe results."""
    skill = Sensitivity.SKILL.read(results)
    if not math.isfinite(skill):
        skill = Retrain.ORIGINAL_SKILL.read(results)
    spread = Sensitivity.SPREAD_RATIO.read(results)
    if not math.isfinite(spread):
        spread = Retrain.ORIGINAL_SPREAD.read(results)
    distinct = Sensitivity.DISTINCT_CLASSES.read(results)
    nan_out = Sensitivity.NAN_OUTPUT_FRACTION.read(results)
    measured = math.isfinite(skill) or math.isfinite(spread) or nan_out > 0
    flat = measured and ((math.isfinite(spread) and spread < th.flat_spread) or distinct == 1
                         or nan_out > 0 or not math.isfinite(skill))
    headroom = Retrain.HEADROOM.read(results)
    short = math.isfinite(headroom) and headroom >= th.headroom  # clearly below the reference
    poor = (not measured) or flat or skill < th.poor_skill or short
    support = static_support(results)
    retrain = results.get("retrain")
    outcomes = (counterfactual_outcomes(retrain, skill, th)
                if retrain is not None and retrain.status == "ok" else [])
    ranked = rank_candidates(outcomes, support, poor, flat, th)
    caveats = retrain_caveats(results)
    findings: list[Finding] = []
    primary = ranked[0] if ranked else None
    for i, cand in enumerate(ranked):
        severity = ("critical" if i == 0 and (flat or cand.confirmed) and not cand.contributing
                    else "warning")
        evidence = {**cand.static, "model_skill": jsonable(skill),
                    "model_spread_ratio": jsonable(spread)}
        if cand.outcome is not None:
            evidence.update(cand.outcome.evidence(skill))
        evidence.update(cand.extra)
        if cand.partner:
            evidence["with"] = cand.partner
        if i == 0:
            evidence.update(caveats)
            if short:
                evidence.update(reference_evidence(results))
        sure = confidence(cand, th)
        if i > 0 and not cand.contributing:  # on the zoo, these were rarely the fault
            sure = min(sure, th.confidence_secondary)
        probe = "retrain" if cand.outcome else faults.get(cand.fault).probe
        findings.append(Finding(fault=cand.fault, severity=severity, confidence=round(sure, 3),
                                confirmed=cand.confirmed, probe=probe, evidence=evidence,
                                recommendation=recommendation(cand, task, skill)))
    blamed = {f.fault for f in findings}
    for fault, (sup, static) in support.items():  # what was seen but not blamed, for the record
        if fault not in blamed and sup >= 1.0:
            unit = faults.get(fault)
            findings.append(Finding(fault=fault, severity="info",
                                    confidence=round(th.confidence_info * sup, 3),
                                    confirmed=False, probe=unit.probe, evidence=static,
                                    recommendation=unit.fix))
    ruled_out = {"ruled_out": [o.name for o in outcomes], **caveats}
    if flat:
        verdict = "flat"
        primary_fault = primary.fault if primary else faults.symptom("flat").code
        if primary is None:
            findings.insert(0, _symptom_finding("flat", th.confidence_flat, {
                "model_skill": jsonable(skill), "model_spread_ratio": jsonable(spread),
                **ruled_out}))
    elif primary is not None and poor:
        verdict, primary_fault = "impaired", primary.fault
    elif short:
        # skilled, yet clearly below what a linear learner gets on the same rows, and no
        # change tried restored it: never healthy
        verdict, primary_fault = "impaired", faults.symptom("short").code
        findings.insert(0, _symptom_finding("short", th.confidence_short, {
            "model_skill": jsonable(skill), **reference_evidence(results), **ruled_out}))
    elif math.isfinite(skill) and skill < th.clear_skill:
        # no skill is never healthy, even when no probe can name a cause
        verdict, primary_fault = "impaired", faults.symptom("unskilled").code
        findings.insert(0, _symptom_finding("unskilled", th.confidence_no_skill, {
            "model_skill": jsonable(skill), "model_spread_ratio": jsonable(spread),
            "not_tried": _not_tried(results), **ruled_out}))
    else:
        verdict, primary_fault = "healthy", None
        findings = [dataclasses.replace(f, severity="info") for f in findings]
    return Diagnosis(verdict, primary_fault, findings)


def _symptom_finding(name: str, confidence: float, evidence: dict[str, Any]) -> Finding:
    """The finding of a symptom (`flat`, `short`, `unskilled`) named when no cause is."""
    symptom = faults.symptom(name)
    return Finding(fault=symptom.code, severity="critical", confidence=confidence,
                   confirmed=False, probe=symptom.probe, evidence=evidence,
                   recommendation=symptom.fix)


def reference_evidence(results: dict[str, ProbeResult]) -> dict[str, Any]:
    """How far the model is from what a linear reference learner gets on the same rows."""
    return {
        "headroom": jsonable(Retrain.HEADROOM.read(results)),
        "attainable_skill": jsonable(Retrain.ATTAINABLE.read(results)),
    }


def retrain_caveats(results: dict[str, ProbeResult]) -> dict[str, str]:
    """What the evidence must say about the counterfactuals themselves: they trained shorter
    than the original (the FLOP budget), or their baseline did not reproduce the symptom."""
    out = {}
    steps, wanted = Retrain.LENGTH_STEPS.read(results), Retrain.WANTED_STEPS.read(results)
    if Retrain.CUT_BY_BUDGET.read(results) == 1:
        out["cut_short"] = (
            f"counterfactuals trained {steps:.0f} of the original training's "
            f"{wanted:.0f} optimizer steps (budget.flops): a fix that needs the "
            "full length may have been missed"
        )
    if Retrain.BASELINE_REPRODUCES.read(results) == 0:
        where = " at that length" if out else ""
        out["not_reproduced"] = (
            f"retrained with its own config{where}, a fresh clone reached "
            "skill: the symptom lies in how the shipped model was trained "
            "(its data, length or weights), not in the config alone"
        )
    return out


def _not_tried(results: dict[str, ProbeResult]) -> str:
    """Why the counterfactuals could not speak, in a few words ('' when they ran)."""
    retrain = results.get("retrain")
    if retrain is None:
        return "retraining was not asked for (the retrain probe is off)"
    if retrain.status != "ok":
        return f"retraining could not run: {retrain.error}"
    if Retrain.SKIPPED.read(results) == 1:
        return "retraining was skipped: the model did well on the retrain validation rows"
    if Retrain.TIME_BUDGET_HIT.read(results) == 1:
        return "the retrain time budget ran out before every change was tried"
    return ""
