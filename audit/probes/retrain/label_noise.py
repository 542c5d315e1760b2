"""Which rows' labels the data itself disputes: confident learning over the reference learner.

A class that lost part of its rows to random relabelling looks, by its counts, like a class
imbalance; the two need different fixes. Confident learning (Northcutt et al., the `cleanlab`
package) tells them apart: it compares each row's given label with out-of-fold predicted
probabilities, against a per-class threshold (the mean confidence of the rows given that
class), so a rare class that is predicted with low but consistent confidence is not "noise",
while rows confidently predicted as another class are.

The probabilities come from the linear reference learner (`reference.classifier`: the same
design and penalty) in `folds`-fold cross-validation on a seeded sample of at most `max_rows`
rows. Unlike the reference's skill, it is not class balanced here: confident learning needs
probabilities of the given labels as they are, and balancing inflates a rare class's
probability wherever the classes overlap, which flagged up to 17% of the rows of a cleanly
labelled 95/5 set (unweighted: 2%). The design is encoded once on the sampled rows
(standardizing and category vocabularies read no labels, so the folds share them without
leaking the target).

The estimate is the number of rows cleanlab's `find_label_issues` (pruned by the estimated
noise rates) flags. Where a class lost 30% of its rows to random relabelling it estimated
0.68 to 1.18 of the true share on the measured sets (two or three classes, two at the low
end), and its examples (the most disputed first) are nearly all truly relabelled. Where the
classes overlap so that a linear learner cannot separate them (low `reference.linear_skill`),
the overlap counts too: the zoo's balanced weak-signal set, cleanly labelled, scores 0.215 at
a reference skill of 0.51 (every other classification scenario of the zoo at most 0.03). Read
the share beside that skill.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audit.evidence import keys
from audit.probes.retrain.reference import ReferenceSettings, classifier, design
from audit.subject.inputs import Inputs
from audit.util.text import one_line

__all__ = ["LabelIssues", "LabelNoiseSettings", "for_rows", "label_issues"]


@dataclass(frozen=True)
class LabelNoiseSettings:
    """How many rows the check reads and how it cross-validates."""

    #: a seeded sample: five fits of the reference learner on 4/5 of it (its full design, so
    #: the share and `reference.linear_skill` speak of one learner; 5,000 rows x 1,024 columns
    #: x 10 classes took 4 s on one loaded core, 5,000 x 20 x 2 0.2 s)
    max_rows: int = 5000
    folds: int = 5
    examples: int = 10  # row indices kept as examples, the most disputed first
    seed: int = 0
    reference: ReferenceSettings = field(default_factory=ReferenceSettings)


@dataclass(frozen=True)
class LabelIssues:
    """The estimate: its share of the rows checked, the count, examples and its cost."""

    share: float  # estimated share of rows whose label disagrees (NaN: could not say)
    count: float  # that share x the rows checked
    rows_checked: int
    examples: tuple[int, ...] = ()  # row indices (of the rows given), the most disputed first
    seconds: float = 0.0
    #: the rows (indices of the rows given) whose label the reference contradicts once the
    #: given labels' class counts are divided out, and the class it gives each: what the
    #: `relabel_disputed` counterfactual relabels them to. Wider than the confident-learning
    #: set (it also holds overlap rows); the counterfactual, scored on given labels, judges it
    flagged: tuple[int, ...] = ()
    suggested: tuple[int, ...] = ()
    #: the overlap the reference shows by itself: its out-of-fold error on the given labels,
    #: and the mean probability it gives a disputed row's own label (overlap disputes rows
    #: near a boundary, about 0.3 to 0.5; a label the rows around it contradict, near 0)
    reference_error: float = float("nan")
    disputed_label_probability: float = float("nan")

    def metrics(self) -> dict[str, float]:
        return {keys.Retrain.LABEL_ISSUE_SHARE.metric: self.share,
                keys.Retrain.LABEL_ISSUES.metric: self.count,
                keys.Retrain.LABEL_ROWS_CHECKED.metric: float(self.rows_checked),
                keys.Retrain.REFERENCE_ERROR.metric: self.reference_error,
                keys.Retrain.DISPUTED_LABEL_PROBABILITY.metric:
                    self.disputed_label_probability}

    def details(self) -> dict[str, Any]:
        return {keys.LABEL_ISSUE_ROWS: list(self.examples),
                keys.LABEL_ISSUE_SECONDS: round(self.seconds, 3)}


def _cannot_say(rows: int, started: float) -> LabelIssues:
    return LabelIssues(float("nan"), float("nan"), rows, (), time.monotonic() - started)


def label_issues(x: Inputs, y: np.ndarray, n_classes: int,
                 settings: LabelNoiseSettings | None = None) -> LabelIssues:
    """Estimate how many of the class labels `y` (ids 0..n_classes-1, one per row of `x`)
    disagree with what the other rows say. Rows with a non-finite label or input are left
    out; so is a class with fewer rows than folds (it cannot be cross-validated). NaN when
    fewer than two classes are left."""
    # imported here: cleanlab and scikit-learn take seconds to import, and only this needs them
    from cleanlab.filter import find_label_issues
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    settings = settings or LabelNoiseSettings()
    started = time.monotonic()
    labels = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if labels.shape[1] != 1 or len(labels) != len(x) or not x.arrays:
        return _cannot_say(0, started)
    labels = labels[:, 0]
    usable = np.isfinite(labels) & x.finite_rows()
    usable &= (labels >= 0) & (labels < max(n_classes, 2)) & (labels == np.round(labels))
    rows = np.flatnonzero(usable)
    if len(rows) > settings.max_rows:
        rng = np.random.default_rng(settings.seed)
        rows = np.sort(rng.choice(rows, settings.max_rows, replace=False))
    ids = labels[rows].astype(np.int64)
    present, counts = np.unique(ids, return_counts=True)
    judged = np.isin(ids, present[counts >= settings.folds])
    rows, ids = rows[judged], ids[judged]
    present, given = np.unique(ids, return_inverse=True)  # classes as 0..k-1 for cleanlab
    if len(present) < 2:
        return _cannot_say(len(rows), started)
    sample = x.take(rows)
    a, _ = design(sample, sample.take(np.arange(1)), settings.reference)
    folds = StratifiedKFold(settings.folds, shuffle=True, random_state=settings.seed)
    model = classifier(len(rows) * (settings.folds - 1) // settings.folds,
                       settings.reference, balanced=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # near-separable classes
        probs = cross_val_predict(model, a[:, :-1], given, cv=folds, method="predict_proba")
    # one process: cleanlab's default pool of workers cannot start inside a daemonic worker
    # (the zoo's process pool), and a Ray worker has its CPU share already
    ranked = find_label_issues(given, probs, return_indices_ranked_by="self_confidence",
                               n_jobs=1)
    count = len(ranked)
    examples = tuple(int(rows[i]) for i in ranked[: settings.examples])
    own = probs[np.arange(len(given)), given]
    corrected = prior_corrected_class(probs, given)
    contradicted = np.flatnonzero(corrected != given)
    return LabelIssues(
        count / len(rows), float(count), len(rows), examples, time.monotonic() - started,
        flagged=tuple(int(rows[i]) for i in contradicted),
        suggested=tuple(int(present[corrected[i]]) for i in contradicted),
        reference_error=float(np.mean(np.argmax(probs, axis=1) != given)),
        disputed_label_probability=float(own[ranked].mean()) if count else float("nan"))


def prior_corrected_class(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Each row's most probable class once the class counts of the given labels are divided
    out (what a class-balanced learner would predict): a class that lost rows to relabelling
    is predicted again where its rows are, even though the relabelled rows outnumber it."""
    freq = np.bincount(given, minlength=probs.shape[1]) / max(len(given), 1)
    return np.argmax(probs / np.maximum(freq, 1e-12), axis=1)


def for_rows(x: Inputs, y: np.ndarray, task: str, n_classes: int,
             seed: int) -> tuple[LabelIssues | None, dict[str, Any]]:
    """The check on the rows given (for classes; None for regression), and its details. It
    is an extra: a failure never costs the counterfactuals, it is one detail line."""
    if task == "regression":
        return None, {}
    started = time.monotonic()
    try:
        found = label_issues(x, y, n_classes, LabelNoiseSettings(seed=seed))
    except Exception as exc:
        return (_cannot_say(len(y), started),
                {LABEL_ISSUE_ERROR: f"{type(exc).__name__}: {one_line(exc, 200)}"})
    return found, found.details()


#: details[LABEL_ISSUE_ERROR]: why the check could not run (its metrics are then NaN)
LABEL_ISSUE_ERROR = "label_issue_error"
