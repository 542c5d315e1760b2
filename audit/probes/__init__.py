"""The probe registry: an explicit dict from name to probe, nothing registered by import."""

from __future__ import annotations

from audit.probes import activations, config, data, gradients, retrain, sensitivity
from audit.probes.base import Probe, ProbeSettings, run_probe

PROBES: dict[str, Probe] = {
    "data": Probe("data", data.run, data.DataSettings,
                  "NaN/inf cells, feature scales, constant columns, label range, class balance"),
    "config": Probe("config", config.run, config.ConfigSettings,
                    "loss vs output head vs labels; optimizer and learning rate"),
    "sensitivity": Probe("sensitivity", sensitivity.run, sensitivity.SensitivitySettings,
                         "output spread and skill on real inputs; response to perturbations"),
    "activations": Probe("activations", activations.run, activations.ActivationSettings,
                         "dead ReLU and saturated sigmoid/tanh fractions per hidden layer"),
    "gradients": Probe("gradients", gradients.run, gradients.GradientSettings,
                       "per-layer gradient norms of the loss; NaN/inf weights"),
    "retrain": Probe("retrain", retrain.run, retrain.RetrainSettings,
                     "retrains fresh clones under the own config and one-change counterfactuals"),
}


def get(name: str) -> Probe:
    """The probe called `name`; the error lists the valid names."""
    try:
        return PROBES[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r}; valid probes are {list(PROBES)}") from None


__all__ = ["PROBES", "Probe", "ProbeSettings", "get", "run_probe"]
