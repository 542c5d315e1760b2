"""The probe registry: an explicit dict from name to probe, nothing registered by import.

The dict is built on first use (`PROBES`, `get`): importing a helper of this package (the
typed keys the fault vocabulary reads) must not import every probe, since the retrain probe
itself plans from the vocabulary.
"""

from __future__ import annotations

from typing import Any

from audit.probes.base import Probe, ProbeSettings, run_probe

_REGISTRY: dict[str, Probe] = {}


def _registry() -> dict[str, Probe]:
    if not _REGISTRY:
        # on first use: each probe module imports `audit.probes.base`, which runs this
        # package first, so importing them at the top would be a circle
        from audit.probes import activations, config, data, gradients, retrain, sensitivity

        _REGISTRY.update({
            "data": Probe("data", data.run, data.DataSettings,
                          "NaN/inf cells, feature scales, constant columns, label range, "
                          "class balance"),
            "config": Probe("config", config.run, config.ConfigSettings,
                            "loss vs output head vs labels; optimizer and learning rate"),
            "sensitivity": Probe("sensitivity", sensitivity.run, sensitivity.SensitivitySettings,
                                 "output spread and skill on real inputs; response to "
                                 "perturbations"),
            "activations": Probe("activations", activations.run,
                                 activations.ActivationSettings,
                                 "dead ReLU and saturated sigmoid/tanh fractions per hidden "
                                 "layer"),
            "gradients": Probe("gradients", gradients.run, gradients.GradientSettings,
                               "per-layer gradient norms of the loss; NaN/inf weights"),
            "retrain": Probe("retrain", retrain.run, retrain.RetrainSettings,
                             "retrains fresh clones under the own config and one-change "
                             "counterfactuals", skipped_when_settled=True,
                             budget={"epochs": "epochs", "max_seconds": "max_seconds",
                                     "seeds": "seeds", "max_flops": "flops"}),
        })
    return _REGISTRY


def __getattr__(name: str) -> Any:
    if name == "PROBES":
        return _registry()
    raise AttributeError(f"module 'audit.probes' has no attribute {name!r}")


def get(name: str) -> Probe:
    """The probe called `name`; the error lists the valid names."""
    try:
        return _registry()[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r}; valid probes are {list(_registry())}") from None


__all__ = ["PROBES", "Probe", "ProbeSettings", "get", "run_probe"]
