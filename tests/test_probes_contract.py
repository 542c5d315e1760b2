"""One contract over every probe: registered, documented, deterministic, JSON round trip."""

from __future__ import annotations

import math
import pkgutil
from pathlib import Path

import pytest

import audit.probes as probes_pkg
from audit import probes
from audit.engine import probe_settings
from audit.manifest.case import Budget, CaseSpec
from audit.subject import load_subject

#: shared by the probes (the retrain probe's own helpers live in its package)
HELPER_MODULES = {"base", "dense_stack", "keys", "outcomes", "tfutil"}
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_probe_module_is_registered_and_documented() -> None:
    modules = {m.name for m in pkgutil.iter_modules(probes_pkg.__path__)} - HELPER_MODULES
    assert modules == set(probes.PROBES)
    readme = README.read_text()
    for name, probe in probes.PROBES.items():
        assert f"`{name}`" in readme, f"probe {name} is not documented in the README"
        assert probe.description


def test_unknown_probe_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="valid probes are"):
        probes.get("sensitivty")


@pytest.mark.parametrize("name", list(probes.PROBES))
def test_a_probe_takes_only_the_budget_fields_it_declares(name: str) -> None:
    """Each declared pair names a real setting and a real `budget:` field; the case's budget
    reaches exactly those settings, whatever else happens to share a name."""
    probe = probes.get(name)
    assert set(probe.budget) <= set(probe.settings.model_fields)
    assert set(probe.budget.values()) <= set(Budget.model_fields)
    budget = Budget(epochs=4, seeds=2, max_seconds=7.0, flops=3e9)
    settings = probe_settings(name, CaseSpec(name="c", model="m", data="d", budget=budget))
    defaults = probe.settings()
    for key in probe.settings.model_fields:
        wanted = getattr(budget, probe.budget[key]) if key in probe.budget else getattr(
            defaults, key)
        assert getattr(settings, key) == wanted, key
    assert (name == "retrain") == bool(probe.budget)


@pytest.fixture(scope="module")
def subject(zoo_cases: dict) -> object:
    case = zoo_cases["regression_unscaled_targets"]
    return load_subject(CaseSpec(**case.spec_fields()))


@pytest.mark.parametrize("name", list(probes.PROBES))
def test_probe_contract(name: str, subject: object) -> None:
    probe = probes.get(name)
    spec = CaseSpec(name="c", model="m", data="d", budget=Budget(epochs=4, seeds=2), seed=3)
    settings = probe_settings(name, spec)
    assert settings.seed == 3
    assert type(settings).model_validate_json(settings.model_dump_json()) == settings
    first = probes.run_probe(probe, subject, settings)
    second = probes.run_probe(probe, subject, settings)
    assert first.status == "ok", first.error
    assert first.probe == name and first.metrics
    assert all(isinstance(v, float) for v in first.metrics.values())
    assert first.duration_s > 0
    for key, value in first.metrics.items():  # same seed, same numbers
        other = second.metrics[key]
        assert (math.isnan(value) and math.isnan(other)) or value == pytest.approx(other,
                                                                                   rel=1e-4,
                                                                                   abs=1e-6)


def test_a_raising_probe_becomes_an_error_result(subject: object) -> None:
    def broken(_subject: object, _settings: object) -> None:
        raise RuntimeError("boom\nsecond line")

    result = probes.run_probe(probes.Probe("broken", broken, probes.ProbeSettings, "x"), subject)
    assert result.status == "error" and result.error == "RuntimeError: boom second line"


def test_every_saturating_activation_has_its_derivative() -> None:
    """The vocabulary lives once (audit/models/vocab.py); the activations probe can measure
    saturation for every activation the retrain probe would replace."""
    import numpy as np

    from audit.models import vocab as keras_vocab
    from audit.probes import activations

    assert set(activations.DERIVATIVE_RATIO) == set(keras_vocab.SATURATING)
    centre = {"sigmoid": 0.5, "tanh": 0.0, "softsign": 0.0, "hard_sigmoid": 0.5}
    for name, derivative in activations.DERIVATIVE_RATIO.items():
        assert float(derivative(np.array([centre[name]]))[0]) == 1.0, name
