"""What a fault unit declares: its text, its root-cause place, its static rule over typed
probe keys, and the counterfactuals that test it.

A rule measures nothing: it reads what the probes measured (`Evidence`) and says how strongly
that points at its fault (`Support`). A counterfactual builds the plans that test the fault on
one subject (`PlanContext`); the retrain probe trains them, `diagnose` judges them. Neither side
names a fault: they iterate the vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from audit.evidence.keys import Key
from audit.evidence.results import ProbeResult
from audit.faults.codes import Code
from audit.faults.plan import Plan

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")

#: how strongly a static rule points at its fault: decisive, a signal, a hint
FULL, PARTIAL, WEAK = 1.0, 0.5, 0.3


@dataclass(frozen=True)
class Confirmation:
    """The confirmation rule's seed test, one set of numbers for both sides: a counterfactual
    must beat the baseline by `win_margin` in `win_share` of the seeds. `diagnose` judges by
    it; the retrain race stops a plan's seeds as soon as it is met or out of reach."""

    win_share: float = 0.66
    win_margin: float = 0.05


CONFIRMATION = Confirmation()


@dataclass(frozen=True)
class Health:
    """What "healthy" means, one set of numbers for both sides: a skill over the trivial
    predictor of at least `skill`, and within `headroom` of what a linear reference learner
    reaches on the same rows (`reference.headroom`: its skill minus the model's). The retrain
    probe skips its counterfactuals only for such a model; `diagnose` calls any other
    `impaired`. `headroom` is calibrated on the zoo's healthy models (benchmarks/README.md)."""

    skill: float = 0.5
    headroom: float = 0.2


HEALTH = Health()


@dataclass(frozen=True)
class Support:
    """A rule's verdict: how strongly (0..1) the cheap probes point at the fault, and the
    numbers that show it."""

    strength: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """The probe results a rule reads: a metric through its typed key, or a probe's details."""

    results: dict[str, ProbeResult]

    def __call__(self, key: Key) -> float:
        return key.read(self.results)

    def details(self, probe: str) -> dict[str, Any]:
        result = self.results.get(probe)
        return result.details if result is not None and result.status == "ok" else {}

    def finite(self, key: Key) -> bool:
        return math.isfinite(self(key))


@dataclass
class PlanContext:
    """What a counterfactual sees when it plans for one subject: the subject, its training
    rows (`split`), the retrain settings, the plans planned so far (a control may already be
    among them) and, for plans that depend on it, the length every plan trains."""

    subject: Any  # audit.subject.assemble.Subject
    split: Any  # audit.probes.retrain.variants.Split
    settings: Any  # audit.probes.retrain.settings.RetrainSettings
    planned: list[Plan]
    length: Any = None  # audit.probes.retrain.budget.Length, set for `after_length` counterfactuals


@dataclass(frozen=True)
class Counterfactual:
    """A family of plans that tests a fault: `build` returns the plans that apply to a
    subject (none when the change cannot apply). `tests` and `also_fixes` are declared here,
    once, and stamped on every plan it builds."""

    name: str
    change: str  # what it changes, in words
    tests: Code | None
    build: Callable[[PlanContext, Counterfactual], list[Plan]]
    also_fixes: tuple[Code, ...] = ()
    after_length: bool = False  # planned once the length is known (needs `ctx.length`)
    #: upstream faults this change merely works around: when one of them is confirmed by its
    #: own change too, that one is the root cause (e.g. standardized targets make a training
    #: that stopped far too early suffice; training as long as it should removes the cause)
    works_around: tuple[Code, ...] = ()
    #: downstream faults whose changes only compensate for the cause this change removes: when
    #: it is confirmed, they rank below it (e.g. one layer's activation put back, against Adam,
    #: another rate, or LeakyReLU everywhere keeping the units it killed alive)
    outranks: tuple[Code, ...] = ()

    def plan(self, name: str | None = None, change: str | None = None, **fields: Any) -> Plan:
        """A plan of this family, declaring what the family tests."""
        return Plan(name or self.name, change or self.change, tests=self.tests,
                    also_fixes=self.also_fixes, works_around=self.works_around,
                    outranks=self.outranks, **fields)


Rule = Callable[[Evidence, Any], Support | None]


@dataclass(frozen=True)
class Fault:
    """One fault code, declared once: what it means, what to do, where its static evidence
    comes from (`probe`), its rule and thresholds (`limits`), and its counterfactuals. Its
    root-cause rank is its place in the vocabulary. A `definitive` fault's full static support
    stands without a retrain when the model underperforms."""

    code: Code
    meaning: str
    fix: str
    probe: str
    rule: Rule | None = None
    limits: Any = None
    counterfactuals: tuple[Counterfactual, ...] = ()
    definitive: bool = False
    symptom: Literal["flat", "short", "unskilled"] | None = None  # a symptom: seen, not why
    #: judged by a check of its own before the probes run (e.g. "class_order"), not by a rule
    judged_by: str | None = None
    #: why the cheap probes' evidence already settles the case, so that no counterfactual
    #: could change the finding (None: retraining may still speak)
    settles: Callable[[Evidence], str | None] | None = None

    def support(self, evidence: Evidence) -> Support | None:
        """The rule's support over `evidence`, or None when it sees nothing."""
        if self.rule is None:
            return None
        found = self.rule(evidence, self.limits)
        return found if found is not None and found.strength > 0 else None
