"""The symptoms: what is seen when no cause could be named. Measured by the sensitivity probe;
no rule and no counterfactual of their own."""

from __future__ import annotations

from audit.faults.codes import Code
from audit.faults.unit import Fault

FLAT_OUTPUT = Fault(
    Code.FLAT_OUTPUT,
    "The output barely responds to the input, and no change tried (alone or in pairs) "
    "restored it.",
    "Inspect the data pipeline and architecture by hand; the evidence lists what was "
    "ruled out.",
    probe="sensitivity", symptom="flat")

BELOW_REFERENCE = Fault(
    Code.BELOW_REFERENCE,
    "The model has skill, but clearly less than a linear reference learner reaches on the "
    "same rows, and no change tried (alone or in pairs) restored it.",
    "Compare the model with the reference (evidence `headroom`, `attainable_skill`): check "
    "the features it receives, its capacity and its training; the evidence lists what was "
    "ruled out.",
    probe="retrain", symptom="short")

NO_SKILL = Fault(
    Code.NO_SKILL,
    "The output moves with the input but predicts the label no better than the trivial "
    "predictor (the mean, the majority class), and no probe could name a cause.",
    "Check that labels and inputs match row for row and carry signal; retrain from the "
    ".keras/.h5 file to let the audit test causes; the evidence says what could not be "
    "tried.",
    probe="sensitivity", symptom="unskilled")
