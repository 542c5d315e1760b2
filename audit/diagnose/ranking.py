"""Faults ranked by how well the evidence explains them: confirmed changes first (a change's
control, the fault it tests and those it also fixes), root cause over symptom, pairs when no
single change speaks, static signals alone only when nothing was confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit import faults
from audit.diagnose.counterfactuals import Outcome
from audit.diagnose.thresholds import THRESHOLDS, Thresholds
from audit.evidence import keys


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
    # confirmed causes first, then unconfirmed ones; root-cause order (decisive static
    # evidence, then what a change only worked around, then the score) ranks within each
    # group, never across: an unconfirmed static finding never outranks a confirmed fix
    ranked = sorted(by_fault.values(), key=lambda c: (
        c.confirmed, not c.contributing, faults.get(c.fault).definitive and c.support >= 1,
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
            # confirmed by a change of its own, one that does not move what this one moves
            # (Adam also moves the rate: it cannot tell a rate from an architecture)
            if (other is not None and other.confirmed and other.outcome is not None
                    and not other.outcome.plan.changed() & cand.outcome.plan.changed()):
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
