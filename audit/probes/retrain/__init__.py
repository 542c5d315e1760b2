"""
It retrains fresh clones under the model's own training config (the baseline: does it reproduce
the symptom?) and under one-change counterfactuals (standardized inputs or targets, another
learning rate, Adam with its rate control, the loss that fits the labels, balanced class
weights, NaN rows dropped, repaired labels, non-saturating activations, default initialization,
gradient clipping, longer training), each as long as the original training in optimizer steps
within a FLOP budget (`budget.plan_length`). The learning rate is searched in decades
(`lr_walk`); plans race seed by seed (`Race`) until the confirmation rule is met or out of
reach. When no single change reaches skill, it tries the most promising pairs. It reports,
per variant, the validation skill and output spread of every seed and what the plan declares
(the fault it tests, its control, its parts), with a linear reference learner's skill on the
same rows (`reference`); `diagnose` judges what they mean.

The package is split by job: `settings`, `planning` (what the vocabulary's counterfactuals
plan for a subject), `search` (the learning-rate walk, the pairs), `variants` (building and
scoring), `race` (seed by seed) and `probe` (running and recording).
"""

from __future__ import annotations

from audit.faults.plan import Plan
from audit.probes.retrain.planning import (
    length_for,
    order_plans,
    plan_changes,
    plan_variants,
    with_length,
)
from audit.probes.retrain.probe import Prepared, prepare, record, run
from audit.probes.retrain.race import Race, races
from audit.probes.retrain.search import combine, lr_walk, pair_plans
from audit.probes.retrain.settings import RetrainSettings
from audit.probes.retrain.variants import (
    Split,
    Variant,
    build_variant,
    build_variants,
    initial_weights,
    make_split,
    original_outcome,
    score,
    seeded_jobs,
)

__all__ = [
    "Plan", "Prepared", "Race", "RetrainSettings", "Split", "Variant", "build_variant",
    "build_variants", "combine", "initial_weights", "length_for", "lr_walk", "make_split",
    "order_plans", "original_outcome", "pair_plans", "plan_changes", "plan_variants",
    "prepare", "races", "record", "run", "score", "seeded_jobs", "with_length",
]
