"""The fault vocabulary: stable codes that reports, dashboards and users depend on.

A new code is added here, in the design's vocabulary and in the README, never elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class Fault:
    """One fault code: what it means and what a person should do about it."""

    code: str
    meaning: str
    fix: str


_FAULT_LIST = [
    Fault(
        "lr_too_low",
        "The learning rate is so small that training barely moves the weights.",
        "Raise the learning rate (try x10 to x100) or train with Adam at its default 1e-3.",
    ),
    Fault(
        "lr_too_high",
        "The learning rate is so large that training diverges or collapses.",
        "Lower the learning rate (try x0.1 to x0.01); add gradient clipping if it still spikes.",
    ),
    Fault(
        "optimizer_stalled",
        "Plain SGD stalls where an adaptive optimizer converges.",
        "Train with Adam (lr 1e-3) or add momentum to SGD.",
    ),
    Fault(
        "unscaled_inputs",
        "Input features are on scales that keep the network from learning.",
        "Standardize the inputs (subtract the mean, divide by the std per feature) "
        "and ship the same scaler with the model.",
    ),
    Fault(
        "unscaled_targets",
        "Regression targets are on a scale the output layer cannot reach in training.",
        "Standardize the targets for training and invert the scaling at prediction time.",
    ),
    Fault(
        "loss_mismatch",
        "The loss, the output activation/units and the labels do not fit each other.",
        "Use the loss that fits the labels: MSE for regression, binary cross-entropy with one "
        "sigmoid unit for two classes, (sparse) categorical cross-entropy with a softmax over "
        "one unit per class for more.",
    ),
    Fault(
        "saturated_activations",
        "Sigmoid/tanh units sit in their flat tails, so gradients vanish.",
        "Use ReLU-family activations (He init) or scale the pre-activations (inputs, init, "
        "BatchNorm).",
    ),
    Fault(
        "dead_relu",
        "Most ReLU units output zero for every input and never recover.",
        "Re-initialize (He init, zero bias), lower the learning rate, or use LeakyReLU/ELU.",
    ),
    Fault(
        "vanishing_gradient",
        "Gradients shrink through the depth of the network so early layers never learn.",
        "Use ReLU-family activations, residual connections or BatchNorm; make the net shallower.",
    ),
    Fault(
        "exploding_gradient",
        "Gradients grow through the network until the weights blow up.",
        "Clip gradients (clipnorm=1.0), use a smaller initialization, lower the learning rate.",
    ),
    Fault(
        "class_imbalance",
        "One class dominates the labels and the model predicts only the majority.",
        "Train with balanced class weights or resample the classes.",
    ),
    Fault(
        "bad_data",
        "The data has NaN/inf cells, constant or malformed columns, or labels that are not "
        "what the loss expects (class ids divided by a scale, floats near integers, one-hot "
        "rows not summing to 1, a constant label).",
        "Drop or impute the NaN/inf rows, remove constant columns, fix malformed values "
        "upstream; give a classification loss integer class ids (multiply back, round).",
    ),
    Fault(
        "undertrained",
        "Training stopped long before the model converged.",
        "Train for more epochs (watch the validation loss) or with a larger learning rate.",
    ),
    Fault(
        "flat_output",
        "The output barely responds to the input, and no change tried (alone or in pairs) "
        "restored it.",
        "Inspect the data pipeline and architecture by hand; the evidence lists what was "
        "ruled out.",
    ),
    Fault(
        "no_skill",
        "The output moves with the input but predicts the label no better than the trivial "
        "predictor (the mean, the majority class), and no probe could name a cause.",
        "Check that labels and inputs match row for row and carry signal; retrain from the "
        ".keras/.h5 file to let the audit test causes; the evidence says what could not be "
        "tried.",
    ),
    Fault(
        "label_order",
        "The labels are encoded in another class order than the model's outputs.",
        "Set `classes:` in the manifest to the model's class order, or re-encode the labels.",
    ),
]

FAULTS: dict[str, Fault] = {fault.code: fault for fault in _FAULT_LIST}
FAULT_CODES: tuple[str, ...] = tuple(FAULTS)
#: symptoms name what is wrong when no cause could be named; every other code but the label
#: codes is a cause
SYMPTOM_CODES: tuple[str, ...] = ("flat_output", "no_skill")
#: judged on the labels before the probes run (audit/class_order.py), not by diagnose's rules
LABEL_CODES: tuple[str, ...] = ("label_order",)
CAUSE_CODES: tuple[str, ...] = tuple(code for code in FAULTS
                                     if code not in SYMPTOM_CODES + LABEL_CODES)


def get(code: str) -> Fault:
    """The fault for `code`; the error lists the valid codes."""
    try:
        return FAULTS[code]
    except KeyError:
        raise KeyError(f"unknown fault code {code!r}; valid codes are {list(FAULTS)}") from None
