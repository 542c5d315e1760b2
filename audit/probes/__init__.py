"""The probe registry: an explicit dict from name to probe, nothing registered by import."""

from __future__ import annotations

from audit.probes import config, data
from audit.probes.base import Probe, ProbeSettings, run_probe

PROBES: dict[str, Probe] = {
    "data": Probe("data", data.run, data.DataSettings,
                  "NaN/inf cells, feature scales, constant columns, label range, class balance"),
    "config": Probe("config", config.run, config.ConfigSettings,
                    "loss vs output head vs labels; optimizer and learning rate"),
}


def get(name: str) -> Probe:
    """The probe called `name`; the error lists the valid names."""
    try:
        return PROBES[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r}; valid probes are {list(PROBES)}") from None


__all__ = ["PROBES", "Probe", "ProbeSettings", "get", "run_probe"]
