"""Probe results -> findings, one primary fault, and a verdict.

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
from audit.faults import CONFIRMATION, HEALTH, PARTIAL, Evidence, Plan
from audit.probes import keys
from audit.probes.keys import Retrain, Sensitivity
from audit.results import Finding, ProbeResult


@dataclass(frozen=True)
class Thresholds:
    """Every number the diagnosis uses, in one place."""

    flat_spread: float = 0.1  # output spread / label spread below this: the output is flat
    poor_skill: float = HEALTH.skill  # skill over the trivial predictor below this: underperforming
    headroom: float = HEALTH.headroom  # a reference learner this much better: underperforming
    clear_skill: float = 0.1  # a healthy model's skill is at least this (Deepchecks' gain bar)
    restored_skill: float = 0.3  # a counterfactual must reach at least this skill...
    restored_share: float = 0.6  # ...and this share of the best variant's skill
    min_effect: float = 0.2  # mean skill gain over the baseline (skills clipped to [-1, 1])
    #: where the data allows little (the attainable skill, by a reference learner trained on
    #: the same rows), this share of it counts as restored and as a full effect...
    attainable_share: float = 0.7
    min_restored_skill: float = 0.15  # ...but never less than this skill...
    min_effect_floor: float = 0.1  # ...or this gain over the baseline
    min_win_share: float = CONFIRMATION.win_share  # share of seeds won by `win_margin`
    win_margin: float = CONFIRMATION.win_margin
    min_gain_over_original: float = 0.15  # the change must also beat the shipped model
    static_alone: float = 0.75  # static support that may blame a fault with no counterfactual
    partial_support: float = PARTIAL  # static support that names an also-fixed fault
    min_diff_spread: float = 0.05  # floor of the seed-to-seed spread in the effect size
    static_weight: float = 0.2  # how much static support adds to a counterfactual's effect
    priority_weight: float = 0.1  # root-cause order breaks near-ties
    # confidence: calibrated on the zoo (benchmarks/README.md, tests/test_zoo_diagnosis.py)
    confidence_confirmed: float = 0.5  # a confirmed fault starts here...
    confidence_per_effect: float = 0.45  # ...plus this times seeds won times effect / full
    full_effect: float = 0.5  # an effect this large counts fully toward confidence
    confidence_static: float = 0.25  # an unconfirmed fault starts here...
    confidence_per_support: float = 0.3  # ...plus this times its static support
    confidence_info: float = 0.2  # times support: something seen but not blamed
    confidence_contributing: float = 0.6  # the partner of a confirmed pair
    confidence_secondary: float = 0.3  # another fault whose change also worked: at most this
    confidence_flat: float = 0.9  # the output is flat: measured directly
    confidence_no_skill: float = 0.8  # no skill: measured directly
    confidence_short: float = 0.6  # below the reference: measured, against a simple learner


THRESHOLDS = Thresholds()


@dataclass
class Diagnosis:
    verdict: str
    primary_fault: str | None
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Outcome:
    """What one counterfactual did, compared seed by seed with the baseline."""

    name: str
    plan: Plan
    skills: list[float]
    baseline: list[float]
    effect: float
    win_share: float
    effect_size: float
    mean_skill: float
    restored: bool
    confirmed: bool
    attainable: float = float("nan")  # what the data allows, by a reference learner

    @property
    def change(self) -> str:
        return self.plan.change

    def evidence(self, original: float) -> dict[str, Any]:
        rate = {} if self.plan.learning_rate is None else {
            "learning_rate_tried": self.plan.learning_rate}
        if math.isfinite(self.attainable) and self.attainable > 0:
            rate.update(attainable_skill=round(self.attainable, 4),
                        share_of_attainable=round(self.mean_skill / self.attainable, 2))
        return {"counterfactual": self.name, "change": self.change, **rate,
                "skill_with_change": _round(self.skills), "skill_own_config": _round(self.baseline),
                "skill_shipped_model": round(original, 4), "effect": round(self.effect, 4),
                "effect_size_d": round(self.effect_size, 2), "seeds_won": self.win_share}


def _round(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def _clip(value: float) -> float:
    """Skill for comparisons: NaN (diverged) counts as the trivial predictor, floor at -1."""
    return 0.0 if not math.isfinite(value) else max(-1.0, min(1.0, value))


# ---------------------------------------------------------------- counterfactual outcomes


def bars(attainable: float, th: Thresholds = THRESHOLDS) -> tuple[float, float]:
    """The skill that counts as restored and the gain that counts as an effect: the fixed
    bars, or a share of the attainable skill (a reference learner's, independent of the
    counterfactuals) where the data allows less than they ask."""
    if not math.isfinite(attainable):
        return th.restored_skill, th.min_effect
    share = th.attainable_share * attainable
    return (max(min(th.restored_skill, share), th.min_restored_skill),
            max(min(th.min_effect, share), th.min_effect_floor))


def counterfactual_outcomes(retrain: ProbeResult, original: float,
                            th: Thresholds = THRESHOLDS) -> list[Outcome]:
    """Each counterfactual's outcome against the baseline, seed by seed."""
    per_seed: dict[str, dict[int, float]] = {}
    for key, value in retrain.metrics.items():
        parsed = keys.parse_seed_skill(key)
        if parsed:
            per_seed.setdefault(parsed[0], {})[parsed[1]] = _clip(value)
    base_by_seed = per_seed.get(keys.BASELINE)
    if not base_by_seed:
        return []
    best = max(float(np.mean(list(v.values()))) for v in per_seed.values())
    attainable = retrain.get(Retrain.ATTAINABLE.metric)
    restored_bar, effect_bar = bars(attainable, th)
    outcomes = []
    for name, by_seed in per_seed.items():
        if name == keys.BASELINE:
            continue
        common = [seed for seed in by_seed if seed in base_by_seed]  # a raced-out plan: one
        skills = [by_seed[seed] for seed in common]
        base = [base_by_seed[seed] for seed in common]
        if not common:
            continue
        diffs = np.array(skills) - np.array(base)
        effect = float(diffs.mean())
        spread = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        d = effect / max(spread, th.min_diff_spread)
        wins = float(np.mean(diffs > th.win_margin))
        mean_skill = float(np.mean(skills))
        restored = mean_skill >= max(restored_bar, th.restored_share * best)
        confirmed = (restored and effect >= effect_bar and wins >= th.min_win_share
                     and mean_skill - _clip(original) >= th.min_gain_over_original)
        outcomes.append(Outcome(name, Plan.read(name, retrain.details), skills, base, effect,
                                wins, d, mean_skill, restored, confirmed, attainable))
    return outcomes


# ---------------------------------------------------------------- static support


def static_support(results: dict[str, ProbeResult]) -> dict[str, tuple[float, dict[str, Any]]]:
    """For each cause: how strongly the cheap probes point at it (0..1), and the numbers, by
    its unit's rule."""
    evidence = Evidence(results)
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for fault in faults.CAUSES:
        found = fault.support(evidence)
        if found is not None:
            out[fault.code] = (min(found.strength, 1.0),
                               {k: _jsonable(v) for k, v in found.evidence.items()})
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
    partner: str | None = None  # a pair's other fault
    contributing: bool = False  # the pair's part that did less alone
    worked_around: bool = False  # its change only worked around an upstream confirmed fault
    extra: dict[str, Any] = field(default_factory=dict)  # controls, the parts' skills alone


class Counterfactuals:
    """The outcomes by name, with the rules that read a plan's declaration and its control."""

    def __init__(self, outcomes: list[Outcome], support: dict[str, tuple[float, dict[str, Any]]],
                 th: Thresholds = THRESHOLDS) -> None:
        self.by_name = {o.name: o for o in outcomes}
        self.support = support
        self.th = th

    def control_restored(self, outcome: Outcome, partner: str | None = None) -> Outcome | None:
        """The control's outcome when it restores skill too (so the second thing the change
        moves is the cause), else None. For a pair, the control is paired with the partner."""
        control = outcome.plan.control
        if control is None:
            return None
        if partner is None and outcome.plan.learning_rate is not None:
            # a change that also moves the rate (Adam, whose steps its rate bounds): the model's
            # own optimizer at any lower rate the search tried is a control too, and the best
            # one that restores explains it (the steps were too big). A higher own rate that
            # works as well leaves the typical-rate control alone in charge: a stall at the
            # family's typical rate is the optimizer's, by convention
            rungs = [o for o in self.by_name.values() if o.restored and not o.plan.parts
                     and o.plan.rate_rung == "down"]
            if rungs:
                return max(rungs, key=lambda o: o.mean_skill)
        if control == keys.BASELINE:
            return None  # the baseline never restores when the change is confirmed
        names = [control] if partner is None else [keys.pair_name(control, partner),
                                                   keys.pair_name(partner, control)]
        found = [self.by_name[n] for n in names if n in self.by_name]
        return found[0] if found and found[0].restored else None

    def fault_of(self, outcome: Outcome, partner: str | None = None) -> str | None:
        """The fault a (part of a) counterfactual speaks for: the one its plan tests, unless
        its control restores too (then the control's fault); a plan that tests no single
        fault speaks for the fault it also fixes with the most static support."""
        control = self.control_restored(outcome, partner)
        if control is not None:
            if control.plan.tests:
                return control.plan.tests
            tested = self.by_name.get(outcome.plan.control or "")  # a pair: its single control
            return tested.plan.tests if tested else None
        if outcome.plan.tests:
            return outcome.plan.tests
        backed = [f for f in outcome.plan.also_fixes
                  if self.support.get(f, (0.0, {}))[0] >= self.th.partial_support]
        return max(backed, key=lambda f: self.support[f][0]) if backed else None

    def controls(self, outcome: Outcome, baseline: list[float]) -> dict[str, Any]:
        """The control of a change that moves two things, for the evidence."""
        control = outcome.plan.control
        if control is None:
            return {}
        if control == keys.BASELINE:
            return {"controls": {keys.BASELINE: {"skill": round(float(np.mean(baseline)), 4),
                                                 "restored": False}}}
        other = self.by_name.get(control)
        if other is None:
            return {"controls": {control: {"skill": None, "restored": None}}}
        return {"controls": {control: {"change": other.change,
                                       "skill": round(other.mean_skill, 4),
                                       "restored": other.restored}}}


def rank_candidates(outcomes: list[Outcome], support: dict[str, tuple[float, dict[str, Any]]],
                    underperforming: bool, flat: bool,
                    th: Thresholds = THRESHOLDS) -> list[Candidate]:
    """Faults ranked by how well the evidence explains them, best first.

    Single changes first; a pair speaks only when no single change was confirmed. Static
    signals alone blame a fault only when the model underperforms and retraining did not
    speak against it: either no counterfactual ran at all (the retrain probe was skipped or
    not applicable), or the output is flat. A fault whose own change was tried and failed is
    ruled out."""
    by_fault: dict[str, Candidate] = {}
    cf = Counterfactuals(outcomes, support, th)

    def offer(fault: str, score: float, confirmed: bool, outcome: Outcome | None,
              **more: Any) -> None:
        sup, static = support.get(fault, (0.0, {}))
        score += th.static_weight * sup + th.priority_weight * faults.root_cause_rank(fault)
        best = by_fault.get(fault)

        def upstream(o: Outcome | None) -> bool:  # removes a mechanism others compensate for
            return o is not None and bool(o.plan.outranks) and o.plan.tests == fault

        if best is None or (confirmed, upstream(outcome), score) > (
                best.confirmed, upstream(best.outcome), best.score):
            by_fault[fault] = Candidate(fault, score, confirmed, outcome, sup, static, **more)

    singles = [o for o in outcomes if not o.plan.parts]
    # a confirmed change whose confirmed control restores too (Adam, and the own optimizer at
    # another rate) is the control's evidence: the finding is the control's, naming the change
    explains: dict[str, dict[str, Any]] = {}
    for outcome in singles:
        control = cf.control_restored(outcome) if outcome.confirmed else None
        if control is not None and control.confirmed and control.plan.tests:
            explains.setdefault(control.name, {})[outcome.name] = {
                "change": outcome.change, "skill": round(outcome.mean_skill, 4)}
    explained = {name for found in explains.values() for name in found}
    for outcome in singles:
        if not outcome.confirmed or outcome.name in explained:
            continue
        extra = cf.controls(outcome, outcome.baseline)
        if outcome.name in explains:
            extra["also_restored_by"] = explains[outcome.name]
        fault = cf.fault_of(outcome)
        if fault:
            offer(fault, outcome.effect, True, outcome, extra=extra)
        for also in outcome.plan.also_fixes:
            if also != fault and support.get(also, (0.0, {}))[0] >= th.partial_support:
                offer(also, outcome.effect, True, outcome, extra=extra)
    if not by_fault:
        for pair in (o for o in outcomes if o.plan.parts and o.confirmed):
            offer_pair(pair, cf, offer, th)
    if underperforming:
        for unit in faults.CAUSES:  # decisive static evidence stands without a retrain
            fault = unit.code
            if unit.definitive and support.get(fault, (0.0, {}))[0] >= 1.0:
                have = by_fault.get(fault)
                offer(fault, 1.0, have is not None and have.confirmed,
                      have.outcome if have else None)
    mark_worked_around(by_fault, singles)
    ranked = sorted(by_fault.values(), key=lambda c: (
        faults.get(c.fault).definitive and c.support >= 1, not c.contributing, c.confirmed,
        not c.worked_around, c.score), reverse=True)
    restored_by(ranked, singles)
    retrained = bool(outcomes)
    ruled_out = {o.plan.tests for o in singles if not o.confirmed}
    if not any(c.confirmed for c in ranked) and underperforming and (flat or not retrained):
        statics = [Candidate(f, s + th.priority_weight * faults.root_cause_rank(f), False, None,
                             s, ev)
                   for f, (s, ev) in support.items()
                   if s >= th.static_alone and f not in by_fault and f not in ruled_out]
        ranked += sorted(statics, key=lambda c: c.score, reverse=True)
    return ranked


def mark_worked_around(by_fault: dict[str, Candidate], singles: list[Outcome]) -> None:
    """Root cause over symptom: a confirmed change that declares it only works around an
    upstream fault ranks below that fault when the upstream fault's own change is confirmed
    too (the change that removes the mechanism beats the one that compensates for it). The
    upstream change may declare it instead (`outranks`): any confirmed change of it ranks the
    faults it names below, whichever change confirmed them."""
    for cand in by_fault.values():
        if not cand.confirmed or cand.outcome is None:
            continue
        for upstream in cand.outcome.plan.works_around:
            other = by_fault.get(upstream)
            if other is not None and other.confirmed and other.outcome is not cand.outcome:
                cand.worked_around = True
    for outcome in singles:
        if not outcome.confirmed:
            continue
        for downstream in outcome.plan.outranks:
            other = by_fault.get(downstream)
            if (other is not None and other.confirmed and other.outcome is not outcome
                    and other.fault != outcome.plan.tests):
                other.worked_around = True


def restored_by(ranked: list[Candidate], singles: list[Outcome]) -> None:
    """Every other single change that restored the model stays in the primary finding's
    evidence (`also_restored_by`): what else worked, with its skill."""
    if not ranked or not ranked[0].confirmed or ranked[0].outcome is None:
        return
    lead = ranked[0]
    others = {o.name: {"change": o.change, "skill": round(o.mean_skill, 4)}
              for o in singles if o.confirmed and o.name != lead.outcome.name}
    if others:
        lead.extra = {**lead.extra,
                      "also_restored_by": {**others, **lead.extra.get("also_restored_by", {})}}


def offer_pair(pair: Outcome, cf: Counterfactuals, offer: Any, th: Thresholds) -> None:
    """A confirmed pair: the primary fault is the part that does more alone (root-cause order
    breaks ties within `win_margin`); the other is a confirmed contributing fault naming it."""
    parts = [cf.by_name.get(name) for name in pair.plan.parts]
    if any(p is None for p in parts):
        return
    first, second = parts  # type: ignore[misc]
    faults_ = [cf.fault_of(first, second.name), cf.fault_of(second, first.name)]
    scored = [(part, fault) for part, fault in zip(parts, faults_, strict=True) if fault]
    if not scored:
        return

    def alone(item: tuple[Outcome | None, str]) -> tuple[float, float]:
        part, fault = item
        assert part is not None
        return (round(part.mean_skill / th.win_margin), faults.root_cause_rank(fault))

    scored.sort(key=alone, reverse=True)
    names = [f for _, f in scored]
    skills_alone = {p.name: round(p.mean_skill, 4) for p in parts if p is not None}
    extra = {"pair": pair.name, "skill_alone": skills_alone}
    lead = names[0]
    partner = names[1] if len(names) > 1 and names[1] != lead else None
    offer(lead, pair.effect, True, pair, partner=partner, extra=extra)
    if partner:
        offer(partner, pair.effect, True, pair, partner=lead, contributing=True, extra=extra)


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
        evidence = {**cand.static, "model_skill": _jsonable(skill),
                    "model_spread_ratio": _jsonable(spread)}
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
        findings.append(Finding(cand.fault, severity, round(sure, 3),
                                cand.confirmed,
                                "retrain" if cand.outcome else faults.get(cand.fault).probe,
                                evidence, recommendation(cand, task, skill)))
    blamed = {f.fault for f in findings}
    for fault, (sup, static) in support.items():  # what was seen but not blamed, for the record
        if fault not in blamed and sup >= 1.0:
            findings.append(Finding(fault, "info", round(th.confidence_info * sup, 3), False,
                                    faults.get(fault).probe, static, faults.get(fault).fix))
    if flat:
        verdict = "flat"
        symptom = faults.symptom("flat")
        primary_fault = primary.fault if primary else symptom.code
        if primary is None:
            findings.insert(0, Finding(symptom.code, "critical", th.confidence_flat, False,
                                       symptom.probe,
                                       {"model_skill": _jsonable(skill),
                                        "model_spread_ratio": _jsonable(spread),
                                        "ruled_out": [o.name for o in outcomes], **caveats},
                                       symptom.fix))
    elif primary is not None and poor:
        verdict, primary_fault = "impaired", primary.fault
    elif short:
        # skilled, yet clearly below what a linear learner gets on the same rows, and no
        # change tried restored it: never healthy
        symptom = faults.symptom("short")
        verdict, primary_fault = "impaired", symptom.code
        findings.insert(0, Finding(symptom.code, "critical", th.confidence_short, False,
                                   symptom.probe,
                                   {"model_skill": _jsonable(skill),
                                    **reference_evidence(results),
                                    "ruled_out": [o.name for o in outcomes], **caveats},
                                   symptom.fix))
    elif math.isfinite(skill) and skill < th.clear_skill:
        # no skill is never healthy, even when no probe can name a cause
        symptom = faults.symptom("unskilled")
        verdict, primary_fault = "impaired", symptom.code
        findings.insert(0, Finding(symptom.code, "critical", th.confidence_no_skill, False,
                                   symptom.probe,
                                   {"model_skill": _jsonable(skill),
                                    "model_spread_ratio": _jsonable(spread),
                                    "not_tried": _not_tried(results),
                                    "ruled_out": [o.name for o in outcomes], **caveats},
                                   symptom.fix))
    else:
        verdict, primary_fault = "healthy", None
        findings = [dataclasses.replace(f, severity="info") for f in findings]
    return Diagnosis(verdict, primary_fault, findings)


def reference_evidence(results: dict[str, ProbeResult]) -> dict[str, Any]:
    """How far the model is from what a linear reference learner gets on the same rows."""
    return {"headroom": _jsonable(Retrain.HEADROOM.read(results)),
            "attainable_skill": _jsonable(Retrain.ATTAINABLE.read(results))}


def retrain_caveats(results: dict[str, ProbeResult]) -> dict[str, str]:
    """What the evidence must say about the counterfactuals themselves: they trained shorter
    than the original (the FLOP budget), or their baseline did not reproduce the symptom."""
    out = {}
    steps, wanted = Retrain.LENGTH_STEPS.read(results), Retrain.WANTED_STEPS.read(results)
    if Retrain.CUT_BY_BUDGET.read(results) == 1:
        out["cut_short"] = (f"counterfactuals trained {steps:.0f} of the original training's "
                            f"{wanted:.0f} optimizer steps (budget.flops): a fix that needs the "
                            "full length may have been missed")
    if Retrain.BASELINE_REPRODUCES.read(results) == 0:
        where = " at that length" if out else ""
        out["not_reproduced"] = (f"retrained with its own config{where}, a fresh clone reached "
                                 "skill: the symptom lies in how the shipped model was trained "
                                 "(its data, length or weights), not in the config alone")
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
