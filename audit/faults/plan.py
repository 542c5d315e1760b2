"""One counterfactual plan: the model's own training with one change (or, for a pair, two).

The one plan type both sides use: the retrain probe builds and trains plans, writes what each
declares into its details (`Plan.info`), and `diagnose` reads them back (`Plan.read`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from audit.evidence import keys
from audit.faults.codes import Code


@dataclass(frozen=True)
class Plan:
    """A plan declares what it tests, so `diagnose` reads one table: the fault its change
    addresses (`tests`), the faults it also fixes (named only when static evidence points at
    them), the plan that isolates a second thing the change moves (`control`: Adam also moves
    the rate, so its control is the model's optimizer at its family's typical rate), whether a
    static check already suspects its fault, and for a pair, its two parts."""

    name: str
    change: str
    tests: Code | None = None
    also_fixes: tuple[Code, ...] = ()
    control: str | None = None
    suspect: bool = False
    parts: tuple[str, ...] = ()
    rate_rung: str | None = None  # "up"/"down": a rung of the learning-rate search
    #: faults upstream of the one this change addresses: when one of them is confirmed by
    #: its own change too, this change only worked around it (ranked below it)
    works_around: tuple[Code, ...] = ()
    #: faults downstream of the one this change addresses: when this change is confirmed, a
    #: change that restored the model under one of them only compensated for it (ranked below)
    outranks: tuple[Code, ...] = ()
    standardize_inputs: bool = False
    standardize_targets: bool = False
    drop_bad_rows: bool = False
    relabel_disputed: bool = False  # training rows whose label the data disputes relabelled
    optimizer: str | None = None
    learning_rate: float | None = None
    clipnorm: float | None = None
    fit_loss: bool = False
    class_weights: bool = False
    #: same | nonsaturating | default_init | unregularized | restore_activation
    architecture: str = "same"
    activations: tuple[tuple[str, str], ...] = ()  # (layer, activation) restore_activation sets
    epochs: int | None = None
    relabel: float | None = None  # labels x this, rounded: class ids again (1.0: rounding)
    #: the `CHANGE_FIELDS` it sets (derived from them when not given)
    moves: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.moves:
            object.__setattr__(self, "moves", tuple(
                name for name in CHANGE_FIELDS if getattr(self, name) != _DEFAULTS[name]))
        # a plain string is read as a code, so a misspelt one fails here, where it is declared
        if self.tests is not None:
            object.__setattr__(self, "tests", Code(self.tests))
        object.__setattr__(self, "also_fixes", tuple(Code(c) for c in self.also_fixes))
        object.__setattr__(self, "works_around", tuple(Code(c) for c in self.works_around))
        object.__setattr__(self, "outranks", tuple(Code(c) for c in self.outranks))

    @property
    def is_rate_rung(self) -> bool:
        """A rung of the learning-rate search: the own optimizer at another rate, nothing else."""
        return (self.learning_rate is not None and not self.parts and self.optimizer is None
                and self.clipnorm is None)

    def changed(self) -> frozenset[str]:
        """The `CHANGE_FIELDS` this plan sets away from the model's own training (as the
        probe declared them, for a plan `read` back from its details)."""
        return frozenset(self.moves)

    def info(self) -> dict[str, Any]:
        """What `diagnose` needs to know about the plan, for the probe's details."""
        return {keys.CHANGE: self.change, keys.TESTS: self.tests,
                keys.ALSO_FIXES: list(self.also_fixes), keys.CONTROL: self.control,
                keys.PARTS: list(self.parts), keys.LEARNING_RATE: self.learning_rate,
                keys.RATE_RUNG: self.rate_rung, keys.WORKS_AROUND: list(self.works_around),
                keys.OUTRANKS: list(self.outranks), keys.MOVES: list(self.moves)}

    @classmethod
    def read(cls, name: str, details: dict[str, Any]) -> Plan:
        """The plan `name` as the retrain probe declared it in `details` (see `info`)."""
        info = details.get(keys.VARIANTS, {}).get(name, {})
        tests = info.get(keys.TESTS)
        return cls(name, info.get(keys.CHANGE, name), tests or None,
                   tuple(info.get(keys.ALSO_FIXES, ())),
                   info.get(keys.CONTROL), parts=tuple(info.get(keys.PARTS, ())),
                   rate_rung=info.get(keys.RATE_RUNG),
                   works_around=tuple(info.get(keys.WORKS_AROUND, ())),
                   outranks=tuple(info.get(keys.OUTRANKS, ())),
                   learning_rate=info.get(keys.LEARNING_RATE),
                   moves=tuple(info.get(keys.MOVES, ())))


#: the fields a change sets; two plans combine when they set different ones
CHANGE_FIELDS = ("standardize_inputs", "standardize_targets", "drop_bad_rows",
                 "relabel_disputed", "optimizer", "learning_rate", "clipnorm", "fit_loss",
                 "class_weights", "architecture", "activations", "relabel")
assert set(CHANGE_FIELDS) <= {f.name for f in fields(Plan)}
_DEFAULTS = {f.name: f.default for f in fields(Plan) if f.name in CHANGE_FIELDS}
