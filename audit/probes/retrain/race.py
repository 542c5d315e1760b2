"""Racing: plans train seed by seed until the confirmation rule is met or out of reach."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from audit.evidence import keys
from audit.faults.unit import CONFIRMATION
from audit.probes.dense_stack import dense_stack
from audit.probes.retrain.settings import RetrainSettings
from audit.probes.retrain.trainer import TrainJob, TrainLog, train_together
from audit.probes.retrain.variants import Variant, clipped, initial_weights, score
from audit.subject import Subject
from audit.util.text import one_line


def races(subject: Subject, settings: RetrainSettings) -> bool:
    """Whether this model's plans race (see `RetrainSettings.race_stacked_min_params`)."""
    if not settings.race or settings.seeds < 2:
        return False
    return (dense_stack(subject.model) is None
            or subject.model.count_params() >= settings.race_stacked_min_params)


class Race:
    """Trains plans seed by seed and keeps every run.

    Without racing, every plan trains every seed at once. With it, every plan trains its
    first seed, and one that shows no skill and no gain over the baseline by half its length
    stops there (successive halving; statically suspected plans always finish); a plan with
    no skill and no gain over the baseline's first seed drops out;
    the others get one more seed per round while the confirmation rule is still undecided
    (not yet met, and still reachable with the seeds left). The baseline trains each seed
    some plan needs."""

    def __init__(self, subject: Subject, settings: RetrainSettings, seeds: list[int],
                 deadline: float, racing: bool) -> None:
        self.subject, self.settings, self.seeds = subject, settings, seeds
        self.deadline, self.racing = deadline, racing
        self.runs: list[tuple[Variant, TrainJob]] = []
        self.logs: list[TrainLog] = []
        self.dropped: dict[str, str] = {}
        #: plan name -> why it could not be built or trained (it costs only itself)
        self.failed: dict[str, str] = {}
        self.rounds = 0
        self.baseline: Variant | None = None
        self._raw: dict[tuple[int, int], float] = {}  # (id(variant), seed) -> skill (NaN: diverged)
        self._now: dict[int, float] = {}  # id(variant) -> its latest clipped skill in training
        self._graphs: dict[tuple[Any, ...], Any] = {}  # traced once, reused by every round
        #: (id(network), seed) -> starting weights: plans sharing a network share them
        self._starts: dict[tuple[int, int], list[np.ndarray]] = {}

    def run(self, variants: list[Variant]) -> None:
        """Train `variants` (the baseline among them, or trained before) as racing allows."""
        for v in variants:
            if v.plan.name == keys.BASELINE:
                self.baseline = v
        if not self.racing:
            self._train([(v, seed) for v in variants for seed in self.seeds])
            return
        self._round(variants, self.seeds[0])
        alive = [v for v in variants if v is not self.baseline
                 and v.plan.name not in self.failed and self._in_race(v)]
        for k, seed in enumerate(self.seeds[1:], start=1):
            alive = [v for v in alive if self._undecided(v, k)]
            if not alive or time.monotonic() > self.deadline:
                break
            self._round(alive, seed)

    def skills(self, variant: Variant, raw: bool = False) -> list[float]:
        """The variant's skill per seed trained: clipped to [-1, 1] (a diverged seed counts
        0), or `raw` (NaN where it diverged)."""
        return [self._raw[(id(variant), s)] if raw else self._skill(variant, s)
                for s in self.seeds if (id(variant), s) in self._raw]

    def _skill(self, variant: Variant, seed: int) -> float:
        return clipped(self._raw[(id(variant), seed)])

    def _round(self, variants: list[Variant], seed: int) -> None:
        pending = [(v, seed) for v in variants if (id(v), seed) not in self._raw]
        base = self.baseline
        if base is not None and (id(base), seed) not in self._raw and base not in variants:
            pending.insert(0, (base, seed))
        self._train(pending)

    def _train(self, pending: list[tuple[Variant, int]]) -> None:
        """Train `pending` together; when that raises, each variant alone, so that a change
        that cannot train costs only itself (its reason in `failed`). The baseline's own
        failure is the probe's: nothing could be judged without it."""
        pending = [(v, seed) for v, seed in pending if v.plan.name not in self.failed]
        if not pending:
            return
        try:
            runs, logs = self._fit(pending)
        except Exception as exc:
            variants = list({id(v): v for v, _ in pending}.values())
            if len(variants) > 1:
                for variant in variants:
                    self._train([(v, seed) for v, seed in pending if v is variant])
                return
            if variants[0] is self.baseline:
                raise
            self.failed[variants[0].plan.name] = (
                f"cannot train this change: {type(exc).__name__}: {one_line(exc)}")
            return
        for (variant, job), log in zip(runs, logs, strict=True):
            self._raw[(id(variant), job.seed)] = score(variant, log, self.subject)[0]
        self.runs += runs
        self.logs += logs

    def _fit(self, pending: list[tuple[Variant, int]]) -> tuple[
            list[tuple[Variant, TrainJob]], list[TrainLog]]:
        self.rounds += 1
        runs = [(v, self._job(v, seed)) for v, seed in pending]
        settings, subject = self.settings, self.subject

        def should_stop(i: int, log: TrainLog) -> str | None:
            variant, job = runs[i]
            skill_now, _ = score(variant, log, subject)
            self._now[id(variant)] = clipped(skill_now)
            if skill_now >= settings.early_success_skill:
                return "early_success"
            return "race_halved" if self._halved(variant, job, log) else None

        logs = train_together([job for _, job in runs], subject.training.batch_size,
                              chunks=settings.chunks, deadline=self.deadline,
                              should_stop=should_stop, graphs=self._graphs)
        return runs, logs

    def _job(self, variant: Variant, seed: int) -> TrainJob:
        """The variant's job under `seed`, as `variants.seeded_jobs` makes it, its starting
        weights drawn once per network and seed (plans that share a network, as every change
        of rate, optimizer or data does, share them; drawing is costly for layers that have
        to be cloned, such as an LSTM's)."""
        key = (id(variant.model), seed)
        if key not in self._starts:
            self._starts[key] = initial_weights(variant.model, seed)
        return replace(variant.job, seed=seed, weights=self._starts[key])

    def _halved(self, variant: Variant, job: TrainJob, log: TrainLog) -> bool:
        """Successive halving within the first seed: past half its epochs, a plan no static
        check suspects, with no skill and no gain over the baseline at that point, stops."""
        if (not self.racing or job.seed != self.seeds[0] or variant is self.baseline
                or variant.plan.suspect or log.epochs_run * 2 < job.epochs
                or self.baseline is None or id(self.baseline) not in self._now):
            return False
        now = self._now[id(variant)]
        return (now < self.settings.race_drop_skill
                and now - self._now[id(self.baseline)] < self.settings.race_drop_margin)

    def _in_race(self, variant: Variant) -> bool:
        """After its first seed: some skill, or a gain over the baseline's first seed."""
        first = self._skill(variant, self.seeds[0])
        base = (self._skill(self.baseline, self.seeds[0])
                if self.baseline is not None and (id(self.baseline), self.seeds[0]) in self._raw
                else 0.0)
        keep = (first >= self.settings.race_drop_skill
                or first - base >= self.settings.race_drop_margin)
        if not keep:
            log = next(log for (v, job), log in zip(self.runs, self.logs, strict=True)
                       if v is variant and job.seed == self.seeds[0])
            when = (f"at epoch {log.epochs_run} of {variant.plan.epochs} of its first seed"
                    if log.stopped == "race_halved" else "after its first seed")
            self.dropped[variant.plan.name] = (
                f"{when} (of {len(self.seeds)}): skill {first:.2f}, no gain over the baseline")
        return keep

    def _undecided(self, variant: Variant, done: int) -> bool:
        """The confirmation rule is neither met nor out of reach after `done` seeds."""
        if self.baseline is None:
            return False
        wins = sum(self._skill(variant, s) - self._skill(self.baseline, s)
                   > CONFIRMATION.win_margin for s in self.seeds[:done])
        need = math.ceil(CONFIRMATION.win_share * len(self.seeds) - 1e-9)
        return wins < need and done - wins <= len(self.seeds) - need


