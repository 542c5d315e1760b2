"""Running the probe and recording what every variant did."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from audit.evidence import keys
from audit.evidence.results import ProbeResult
from audit.faults.plan import Plan
from audit.probes.base import NotApplicable
from audit.probes.retrain import label_noise
from audit.probes.retrain.budget import Length
from audit.probes.retrain.planning import length_for, plan_changes, with_length
from audit.probes.retrain.race import Race, races
from audit.probes.retrain.reference import linear_reference
from audit.probes.retrain.search import lr_walk, pair_plans
from audit.probes.retrain.settings import RetrainSettings
from audit.probes.retrain.trainer import TrainJob
from audit.probes.retrain.variants import (
    Split,
    Variant,
    build_variants,
    clipped,
    make_split,
    original_outcome,
    score,
    seeded_jobs,
)
from audit.subject import Subject


@dataclass
class Prepared:
    """Everything the probe decides before it trains: the rows, the plans at their length, the
    seeds, the shipped model's own outcome on the validation rows, and which training rows'
    labels the data disputes."""

    split: Split
    plans: list[Plan]
    length: Length
    seeds: list[int]
    original_skill: float
    original_spread: float
    healthy: bool  # the shipped model already does well: no counterfactuals are needed
    label_issues: label_noise.LabelIssues | None = None  # None: regression
    label_details: dict[str, Any] = field(default_factory=dict)

    def grid(self, subject: Subject) -> list[tuple[Variant, TrainJob]]:
        """Every plan once per seed, built: the full grid racing chooses from."""
        variants = build_variants(subject, self.split, self.plans)
        return [(v, job) for v in variants for job in seeded_jobs(v, self.seeds)]


def prepare(subject: Subject, settings: RetrainSettings) -> Prepared:
    """Split the rows, find the training rows whose labels the data disputes (classes only:
    confident learning over the reference learner), plan the counterfactuals and their length
    (cutting the training rows when the FLOP budget asks for it), and score the shipped
    model."""
    split = make_split(subject, settings)
    issues, label_details = label_noise.for_rows(split.x_train, split.y_train, subject.task,
                                                 subject.n_classes, settings.seed)
    if issues is not None and issues.rows_checked:
        split = replace(split, disputed=np.asarray(issues.flagged, dtype=np.int64),
                        suggested=np.asarray(issues.suggested, dtype=np.int64),
                        disputed_share=issues.share)
        # the examples as the subject's rows, as the report gives them
        issues = replace(issues, examples=tuple(int(split.train_rows[i])
                                                for i in issues.examples))
        label_details = {**label_details, **issues.details()}
    changes = plan_changes(subject, split, settings)
    length = length_for(subject, split, len(changes) + 1, settings)
    split = split.keep_train_rows(length.train_rows)
    skill, spread = original_outcome(subject, split)
    return Prepared(split=split, plans=with_length(changes, length, settings, subject, split),
                    length=length,
                    seeds=[settings.seed * 1000 + s for s in range(settings.seeds)],
                    original_skill=skill, original_spread=spread,
                    healthy=bool(np.isfinite(skill) and skill >= settings.healthy_skill),
                    label_issues=issues, label_details=label_details)


def run(subject: Subject, settings: RetrainSettings) -> ProbeResult:
    if not subject.retrainable:
        raise NotApplicable(subject.not_retrainable)
    started = time.monotonic()
    prep = prepare(subject, settings)
    split = prep.split
    metrics: dict[str, float] = {keys.Retrain.ORIGINAL_SKILL.metric: prep.original_skill,
                                 keys.Retrain.ORIGINAL_SPREAD.metric: prep.original_spread,
                                 "train_rows": float(len(split.x_train)),
                                 "validation_rows": float(len(split.x_val)),
                                 **prep.length.metrics()}
    # what the data allows, by a linear learner on the same rows: the yardstick a weak
    # signal's counterfactuals are judged by, and a healthy model's headroom
    reference = linear_reference(split.x_train, split.y_train, split.x_val, split.y_val,
                                 subject.task, subject.n_classes)
    metrics[keys.Retrain.LINEAR_REFERENCE.metric] = reference
    metrics[keys.Retrain.ATTAINABLE.metric] = reference
    headroom = reference - clipped(prep.original_skill)
    metrics[keys.Retrain.HEADROOM.metric] = headroom
    # healthy: skilled, and not clearly short of what the data allows
    near_reference = not (np.isfinite(headroom) and headroom >= settings.healthy_headroom)
    # which rows' labels the data disputes (classes only): confident learning over the same
    # reference learner's out-of-fold probabilities
    noise_details = prep.label_details
    if prep.label_issues is not None:
        metrics.update(prep.label_issues.metrics())
    if settings.skip_when_healthy and prep.healthy and near_reference:
        metrics[keys.Retrain.SKIPPED.metric] = 1.0
        why = "the model already does well on validation"
        return ProbeResult(probe="retrain", metrics=metrics,
                           details={keys.SKIPPED_DETAIL: why, **noise_details})
    racing = races(subject, settings)
    race = Race(subject, settings, prep.seeds, started + settings.max_seconds, racing)
    failed = race.failed  # a change that cannot be built or trained costs only itself
    variants = build_variants(subject, split, prep.plans, failed)
    if keys.BASELINE in failed:  # nothing can be judged without the model's own config
        raise NotApplicable(failed[keys.BASELINE])
    variants = trained(race, variants)
    attempted = {p.name: p for p in prep.plans}
    while time.monotonic() < race.deadline:  # the learning-rate search walks on
        tried = {v.plan.name: _diverged_nan(race.skills(v, raw=True)) for v in variants}
        walked = [p for p in lr_walk([v.plan for v in variants], tried,
                                     subject.training.learning_rate, settings)
                  if p.name not in tried and p.name not in failed]
        if not walked:
            break
        attempted.update((p.name, p) for p in walked)
        variants += trained(race, build_variants(subject, split, walked, failed))
    plans = [v.plan for v in variants]
    single_skill = {v.plan.name: _nanmean(race.skills(v)) for v in variants}
    best_change = max((clipped(value) for name, value in single_skill.items()
                       if name != keys.BASELINE), default=0.0)
    base_skill = single_skill.get(keys.BASELINE, float("nan"))
    pairs: list[Plan] = []
    if best_change < settings.pairs_below_skill and time.monotonic() < race.deadline:
        pairs = pair_plans(plans, {k: clipped(v) for k, v in single_skill.items()}, settings)
    singles_trained = len(race.runs)
    attempted.update((p.name, p) for p in pairs)
    pair_variants = trained(race, build_variants(subject, split, pairs, failed)) if pairs else []
    details: dict[str, Any] = {keys.VARIANTS: {}, **noise_details}
    record(variants + pair_variants, race, subject, metrics, details)
    for name, reason in failed.items():
        details[keys.VARIANTS][name] = {**attempted[name].info(), keys.ERROR: reason}
    metrics["lr_search.rates"] = float(sum(p.is_rate_rung for p in plans))
    n_seeds = len(prep.seeds)
    metrics[keys.Retrain.PAIRS_TRIED.metric] = float(len(pairs))
    metrics[keys.Retrain.PAIR_TRAININGS.metric] = float(len(race.runs) - singles_trained)
    metrics[keys.Retrain.BASELINE_REPRODUCES.metric] = float(
        not (np.isfinite(base_skill) and base_skill >= settings.healthy_skill))
    metrics["race.on"] = float(racing)
    metrics["race.rounds"] = float(race.rounds)
    metrics["race.dropped_plans"] = float(len(race.dropped))
    metrics["variants"] = float(len(plans) + len(pairs))
    metrics[keys.Retrain.TRAININGS.metric] = float(len(race.runs))
    metrics[keys.Retrain.FULL_GRID_TRAININGS.metric] = float((len(plans) + len(pairs)) * n_seeds)
    metrics["epochs_trained"] = float(sum(log.epochs_run for log in race.logs))
    metrics["epochs_full_grid"] = float(
        sum((p.epochs or 0) * n_seeds for p in plans + pairs))
    metrics[keys.Retrain.TIME_BUDGET_HIT.metric] = float(
        any(log.stopped == "time_budget" for log in race.logs))
    return ProbeResult(probe="retrain", metrics=metrics, details=details,
                       part_errors={keys.plan_metric(name, keys.ERROR): reason
                                    for name, reason in failed.items()})


def trained(race: Race, variants: list[Variant]) -> list[Variant]:
    """`variants` raced; those that could not train are left out (`race.failed` says why)."""
    race.run(variants)
    return [v for v in variants if v.plan.name not in race.failed]


def record(variants: list[Variant], race: Race, subject: Subject, metrics: dict[str, float],
           details: dict[str, Any]) -> None:
    """Each variant's per-seed skills and summaries into the probe's metrics and details."""
    for variant in variants:
        plan = variant.plan
        mine = [(job, log) for (v, job), log in zip(race.runs, race.logs, strict=True)
                if v is variant]
        if not mine:
            continue
        skills, spreads = zip(*(score(variant, log, subject) for _, log in mine),
                              strict=True)
        prefix = f"{plan.name}."
        metrics[prefix + "skill_mean"] = _nanmean(skills)
        metrics[prefix + "skill_min"] = _nanmin(skills)
        metrics[prefix + "spread_mean"] = _nanmean(spreads)
        metrics[prefix + "diverged"] = float(np.mean([not np.isfinite(s) for s in skills]))
        metrics[keys.plan_metric(plan.name, keys.PLAN_EPOCHS)] = float(
            max(log.epochs_run for _, log in mine))
        for (job, _), s in zip(mine, skills, strict=True):
            metrics[keys.seed_skill(plan.name, job.seed)] = float(s)
        metrics[prefix + "seeds"] = float(len(mine))
        details[keys.VARIANTS][plan.name] = {
            **plan.info(),
            keys.STOPPED: [log.stopped for _, log in mine],
            keys.FINAL_LOSS: [log.losses[-1] if log.losses else None for _, log in mine],
            **({"dropped": race.dropped[plan.name]} if plan.name in race.dropped else {}),
        }


def _diverged_nan(values: list[float]) -> float:
    """The mean skill, NaN when any seed diverged (the rate search reads divergence)."""
    return float(np.mean(values)) if values and np.isfinite(values).all() else float("nan")


def _nanmean(values: Any) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _nanmin(values: Any) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmin(arr)) if np.isfinite(arr).any() else float("nan")

