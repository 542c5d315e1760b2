"""The scenario registry: every zoo scenario's name, task, the fault it was built to show (a
two-change bug also names its contributing fault), a description and its builder, in the order
the zoo builds and reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit import faults
from audit.zoo import keras2_saved, shapes, stacks
from audit.zoo.builders import (
    binary_class_imbalance,
    binary_constant_label,
    binary_mlp_healthy,
    binary_weak_signal_balanced_healthy,
    binary_weak_signal_imbalanced,
    deep_exploding,
    deep_vanishing,
    linear_healthy,
    linear_lr_too_low,
    linear_raw_inputs,
    linear_sgd_diverges,
    linear_sgd_small_rate_healthy,
    multiclass_clean_labels_healthy,
    multiclass_deep_healthy,
    multiclass_fraction_labels,
    multiclass_ids_over_255,
    multiclass_loss_mismatch,
    multiclass_near_integer_labels,
    multiclass_noisy_labels,
    multiclass_undertrained,
    regression_bad_data,
    regression_dead_relu,
    regression_lightly_regularized_healthy,
    regression_lr_too_high,
    regression_optimizer_stalled,
    regression_over_regularized,
    regression_raw_inputs_high_lr,
    regression_rmsprop_long_healthy,
    regression_rmsprop_long_low_rate,
    regression_saturated,
    regression_sgd_too_brief,
    regression_softmax_layer,
    regression_unscaled_inputs,
    regression_unscaled_targets,
)


@dataclass(frozen=True)
class Scenario:
    """A zoo entry: what its builder trains, and the fault the audit should find in it."""

    name: str
    task: str
    expected_fault: str | None
    description: str
    build: Callable[[], Any] = field(repr=False)  # -> (model, x, y, training) or `Built`
    shape: str = "mlp"
    #: a two-change bug's other fault: a confirmed contributing finding naming the primary
    contributing: str | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("linear_healthy", "regression", None,
                 "y = 2x + 1, x in 0..1, Dense(1), Adam(0.01), 100 epochs", linear_healthy),
        Scenario("linear_raw_inputs", "regression", None,
                 "y = 2x + 1, raw x in 0..100, noise std 10, Adam(0.01): trains fine",
                 linear_raw_inputs),
        Scenario("binary_mlp_healthy", "binary", None, "8 features, one ReLU layer, Adam",
                 binary_mlp_healthy),
        Scenario("multiclass_deep_healthy", "multiclass", None,
                 "4 classes, 12 features, three ReLU layers, Adam", multiclass_deep_healthy),
        Scenario("linear_lr_too_low", "regression", "lr_too_low",
                 "y = 2x + 1, Dense(1), Adam(1e-5), 100 epochs", linear_lr_too_low),
        Scenario("regression_lr_too_high", "regression", "lr_too_high",
                 "two ReLU layers, SGD at 3.0", regression_lr_too_high),
        Scenario("regression_optimizer_stalled", "regression", "optimizer_stalled",
                 "three sigmoid layers, plain SGD(0.01)", regression_optimizer_stalled),
        Scenario("regression_unscaled_inputs", "regression", "unscaled_inputs",
                 "features scaled 1e-3..1e3 into tanh units", regression_unscaled_inputs),
        Scenario("regression_unscaled_targets", "regression", "unscaled_targets",
                 "targets around 20000 +- 3000, Adam(1e-3)", regression_unscaled_targets),
        Scenario("multiclass_loss_mismatch", "multiclass", "loss_mismatch",
                 "3 classes, one sigmoid unit, binary cross-entropy", multiclass_loss_mismatch),
        Scenario("regression_saturated", "regression", "saturated_activations",
                 "two narrow sigmoid layers with N(0, 20) init", regression_saturated),
        Scenario("regression_dead_relu", "regression", "dead_relu",
                 "ReLU layers with bias init -8", regression_dead_relu),
        Scenario("deep_vanishing", "binary", "vanishing_gradient",
                 "ten sigmoid layers, SGD(0.01)", deep_vanishing),
        Scenario("deep_exploding", "regression", "exploding_gradient",
                 "six ReLU layers with N(0, 1.5) init", deep_exploding),
        Scenario("binary_class_imbalance", "binary", "class_imbalance",
                 "3% overlapping positives", binary_class_imbalance),
        Scenario("regression_bad_data", "regression", "bad_data",
                 "5% of rows with a NaN cell", regression_bad_data),
        Scenario("multiclass_undertrained", "multiclass", "undertrained",
                 "5 classes, SGD(0.01), one epoch", multiclass_undertrained),
        Scenario("regression_sgd_too_brief", "regression", "optimizer_stalled",
                 "three sigmoid layers, plain SGD(0.01), two epochs", regression_sgd_too_brief,
                 contributing="undertrained"),
        Scenario("regression_raw_inputs_high_lr", "regression", "lr_too_high",
                 "raw inputs in the hundreds, two ReLU layers, SGD(1.0)",
                 regression_raw_inputs_high_lr, contributing="unscaled_inputs"),
        Scenario("multiclass_fraction_labels", "regression", "bad_data",
                 "4 classes whose ids were divided by 4, sparse cross-entropy",
                 multiclass_fraction_labels),
        Scenario("regression_softmax_layer", "regression", "saturated_activations",
                 "the first of four ReLU layers swapped to softmax, SGD(0.01): its outputs of "
                 "about 1/64 starve the layers after it", regression_softmax_layer),
        Scenario("multiclass_ids_over_255", "regression", "bad_data",
                 "10 classes whose ids were divided by 255, sparse cross-entropy",
                 multiclass_ids_over_255),
        Scenario("multiclass_near_integer_labels", "regression", "bad_data",
                 "4 classes stored as floats within 0.01 of their ids, sparse cross-entropy",
                 multiclass_near_integer_labels),
        Scenario("binary_constant_label", "regression", "bad_data",
                 "every label is 1, sigmoid + binary cross-entropy", binary_constant_label),
        Scenario("linear_sgd_diverges", "regression", "lr_too_high",
                 "Dense(1), SGD(0.01), 500 scaled but strongly correlated features",
                 linear_sgd_diverges),
        Scenario("linear_sgd_small_rate_healthy", "regression", None,
                 "the same data and Dense(1) under SGD(1e-4)", linear_sgd_small_rate_healthy),
        Scenario("regression_rmsprop_long_low_rate", "regression", "lr_too_low",
                 "one ReLU layer, RMSprop(1e-5), 200 epochs on 200 rows",
                 regression_rmsprop_long_low_rate),
        Scenario("regression_rmsprop_long_healthy", "regression", None,
                 "the same model under RMSprop(1e-3), 200 epochs",
                 regression_rmsprop_long_healthy),
        Scenario("binary_weak_signal_imbalanced", "binary", "class_imbalance",
                 "5% positives, a weak signal, plain cross-entropy",
                 binary_weak_signal_imbalanced),
        Scenario("binary_weak_signal_balanced_healthy", "binary", None,
                 "the same weak signal with 50/50 labels", binary_weak_signal_balanced_healthy),
        Scenario("regression_over_regularized", "regression", "over_regularized",
                 "two ReLU layers with an L2 kernel penalty of 3, Adam, 40 epochs",
                 regression_over_regularized),
        Scenario("regression_lightly_regularized_healthy", "regression", None,
                 "the same network with L2 1e-4 and dropout 0.1",
                 regression_lightly_regularized_healthy),
        Scenario("multiclass_noisy_labels", "multiclass", "bad_data",
                 "3 separated classes, 70% of class 0 relabelled at random, softmax, Adam",
                 multiclass_noisy_labels),
        Scenario("multiclass_clean_labels_healthy", "multiclass", None,
                 "the same classes, labels untouched", multiclass_clean_labels_healthy),
        Scenario("binary_exponential_stack", "binary", "exploding_gradient",
                 "four exponential layers on two rings, Adam(0.01): the weights blow up to "
                 "NaN; gradient clipping alone does not cure it, ReLU units do",
                 stacks.binary_exponential_stack),
        Scenario("binary_linear_stack", "binary", "saturated_activations",
                 "three linear hidden layers on two rings: a linear model, no line separates "
                 "them", stacks.binary_linear_stack),
        Scenario("binary_deep_sigmoid_adam", "binary", "vanishing_gradient",
                 "eight sigmoid layers of 5 under Adam at its typical 1e-3: a higher rate "
                 "only compensates", stacks.binary_deep_sigmoid_adam),
        Scenario("multiclass_sigmoid_head_healthy", "multiclass", None,
                 "three sigmoid units under categorical cross-entropy, which Keras divides "
                 "by their sum", stacks.multiclass_sigmoid_head_healthy),
        Scenario("multiclass_overlap_healthy", "multiclass", None,
                 "three overlapping classes, clean labels: confident learning disputes 10% "
                 "of the rows (overlap, not noise)", stacks.multiclass_overlap_healthy),
        Scenario("structured_healthy", "binary", None,
                 "named inputs age/income (Normalization) and city (StringLookup), Adam",
                 shapes.structured_healthy, "structured"),
        Scenario("structured_lr_too_low", "binary", "lr_too_low",
                 "the structured model under Adam(1e-6)", shapes.structured_lr_too_low,
                 "structured"),
        Scenario("cnn_healthy", "multiclass", None, "8x8 images, Conv2D + pooling, Adam",
                 shapes.cnn_healthy, "cnn"),
        Scenario("cnn_lr_too_high", "multiclass", "lr_too_high", "the CNN under SGD(20)",
                 shapes.cnn_lr_too_high, "cnn"),
        Scenario("text_lstm_healthy", "binary", None, "token sequences, Embedding + LSTM, Adam",
                 shapes.text_lstm_healthy, "text"),
        Scenario("text_lstm_lr_too_low", "binary", "lr_too_low",
                 "the LSTM under Adam(1e-6)", shapes.text_lstm_lr_too_low, "text"),
        Scenario("seq_conv1d_healthy", "regression", None,
                 "two-channel sequences, Conv1D + global max pooling, Adam",
                 shapes.seq_conv1d_healthy, "sequence"),
        Scenario("seq_conv1d_unscaled_targets", "regression", "unscaled_targets",
                 "the Conv1D model on targets around 30000", shapes.seq_conv1d_unscaled_targets,
                 "sequence"),
        Scenario("two_heads_score_healthy", "regression", None,
                 "a two-headed model audited on its regression head",
                 shapes.two_heads_score_healthy, "two_heads"),
        Scenario("two_heads_risk_loss_mismatch", "multiclass", "loss_mismatch",
                 "the same model audited on its 3-class head built as one sigmoid unit",
                 shapes.two_heads_risk_loss_mismatch, "two_heads"),
        Scenario("export_healthy", "binary", None,
                 "the structured model as a SavedModel export with named inputs",
                 shapes.export_healthy, "export"),
        Scenario("export_flat", "binary", "flat_output",
                 "a structured model collapsed by SGD(50), shipped as an export",
                 shapes.export_flat, "export"),
        Scenario("keras2_savedmodel_healthy", "binary", None,
                 "8 features, Dense + BatchNormalization + Dropout, Adam, a Keras 2 SavedModel",
                 keras2_saved.keras2_savedmodel_healthy, "keras2"),
        Scenario("keras2_savedmodel_lr_too_low", "regression", "lr_too_low",
                 "linear_lr_too_low trained and saved by Keras 2 (tf_keras) as a SavedModel",
                 keras2_saved.keras2_savedmodel_lr_too_low, "keras2"),
        Scenario("keras2_h5_lr_too_low", "regression", "lr_too_low",
                 "linear_lr_too_low trained and saved by Keras 2 (tf_keras) as .h5",
                 keras2_saved.keras2_h5_lr_too_low, "keras2"),
    ]
}


def covered_faults() -> set[str]:
    """Cause codes with at least one scenario (the tests check every cause is covered)."""
    return ({s.expected_fault for s in SCENARIOS.values() if s.expected_fault}
            & set(faults.CAUSE_CODES))
