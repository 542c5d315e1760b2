"""What to audit: the typed case specification (and, later, the manifest that yields cases).

Everything here is plain data validated by pydantic: no TensorFlow, no Ray, no I/O beyond
reading a manifest and hashing files for case ids.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Task = Literal["regression", "binary", "multiclass"]
ALL_PROBES: tuple[str, ...] = ("data", "config", "sensitivity", "activations", "gradients", "retrain")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Training(_Strict):
    """How the model was trained; unset fields come from the model's saved compile config."""

    epochs: int | None = Field(None, ge=1, description="epochs of the original training")
    batch_size: int | None = Field(None, ge=1)
    optimizer: str | None = Field(None, description="sgd, adam, rmsprop, adagrad, ...")
    learning_rate: float | None = Field(None, gt=0)
    loss: str | None = Field(None, description="a Keras loss name, e.g. mse")


class Budget(_Strict):
    """Limits for each retraining counterfactual."""

    epochs: int = Field(30, ge=1, description="at most this many epochs per counterfactual")
    max_seconds: float = Field(300.0, gt=0, description="wall-clock budget of the retrain probe")
    seeds: int = Field(3, ge=1, le=10, description="seeds per counterfactual")


class Resources(_Strict):
    """Ray resources of one case's actor; fractions of a GPU are allowed."""

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)


class CaseSpec(_Strict):
    """One (model, dataset) pair to audit, with everything that determines its result."""

    case_id: str = ""
    name: str
    model: str
    data: str
    label: str | None = None
    features: tuple[str, ...] | None = None
    task: Task | None = None
    training: Training = Training()
    probes: tuple[str, ...] = ALL_PROBES
    budget: Budget = Budget()
    seed: int = 0
    trust_model: bool = False
    time_limit_s: float | None = Field(None, gt=0)
