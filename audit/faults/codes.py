"""The fault codes: stable names that reports, dashboards and users depend on.

A `StrEnum`, so a misspelt code fails where it is written (`Code("lr_to_low")` raises) and
every code still reads and serializes as its plain string.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """Every fault code, causes first in root-cause order, then the symptoms."""

    BAD_DATA = "bad_data"
    LOSS_MISMATCH = "loss_mismatch"
    UNSCALED_TARGETS = "unscaled_targets"
    UNSCALED_INPUTS = "unscaled_inputs"
    CLASS_IMBALANCE = "class_imbalance"
    LR_TOO_HIGH = "lr_too_high"
    LR_TOO_LOW = "lr_too_low"
    OVER_REGULARIZED = "over_regularized"
    EXPLODING_GRADIENT = "exploding_gradient"
    DEAD_RELU = "dead_relu"
    SATURATED_ACTIVATIONS = "saturated_activations"
    VANISHING_GRADIENT = "vanishing_gradient"
    OPTIMIZER_STALLED = "optimizer_stalled"
    UNDERTRAINED = "undertrained"
    LABEL_ORDER = "label_order"
    FLAT_OUTPUT = "flat_output"
    BELOW_REFERENCE = "below_reference"
    NO_SKILL = "no_skill"
