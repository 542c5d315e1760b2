"""A change that cannot be built or trained costs only itself: its own `error` row, every
other change still trained and judged. And no change may fail to build on a model saved in
another session, whose layers carry the names Keras gives first (`dense`, `dense_1`, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ZOO_WORKERS

from audit import probes
from audit.diagnose import diagnose
from audit.engine import metric_rows
from audit.evidence import keys
from audit.manifest.case import CaseSpec
from audit.probes.retrain import (
    RetrainSettings,
    combine,
    make_split,
    plan_variants,
    race,
    variants,
)
from audit.subject import load_subject
from audit.zoo import map_in_processes


def save_case(folder: str, name: str, units: int, head: str | None, loss: str,
              optimizer: str, lr: float) -> dict[str, str]:
    """A Sequential model trained and saved the ordinary way (in whichever process runs
    this), with its data as Parquet: the two files a fleet would hand the audit."""
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(units, activation=head)])
    model.compile(keras.optimizers.get({"class_name": optimizer,
                                        "config": {"learning_rate": lr}}), loss)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    model.save(f"{folder}/{name}.keras")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "y": y}),
                   f"{folder}/{name}.parquet")
    return {"model": f"{folder}/{name}.keras", "data": f"{folder}/{name}.parquet"}


def spec_of(files: dict[str, str], name: str) -> CaseSpec:
    return CaseSpec(name=name, label="y", training={"epochs": 3, "batch_size": 32}, **files)


def failed_builds(files: dict[str, str], name: str) -> dict[str, Any]:
    """In this process as a fresh session would be: every change the vocabulary plans for the
    model, and every pair of them, built; what failed, and whether a new Dense layer's
    automatic name is one the model already has (the trap the builds must avoid)."""
    import keras

    keras.utils.clear_session()  # Keras' automatic names count from zero again
    subject = load_subject(spec_of(files, name) if "model" in files else files["spec"])
    # the next automatic name, before anything is built (a Dense made here takes `dense`; the
    # one a change makes next would take `dense_1`, a name such a model has too)
    clash = keras.layers.Dense(1).name in {layer.name for layer in subject.model.layers}
    settings = RetrainSettings()
    split = make_split(subject, settings)
    singles = plan_variants(subject, split, settings)
    pairs = [p for i, a in enumerate(singles) for b in singles[i + 1:]
             if (p := combine(a, b)) is not None]
    failed: dict[str, str] = {}
    built = variants.build_variants(subject, split, singles + pairs, failed)
    return {"failed": failed, "built": len(built), "planned": len(singles) + len(pairs),
            "names": {p.name for p in singles}, "clash": clash}


@pytest.fixture(scope="module")
def mismatch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One sigmoid unit under categorical cross-entropy, built and saved in one fresh
    process (its layers are `dense`, `dense_1`, `dense_2`)."""
    folder = str(tmp_path_factory.mktemp("isolation"))
    made = map_in_processes(save_case, [
        (folder, "mismatch", 1, "sigmoid", "categorical_crossentropy", "adam", 1e-3),
        (folder, "slow", 1, "sigmoid", "binary_crossentropy", "sgd", 1e-6)], 2)
    return {"mismatch": made[0], "slow": made[1]}


def test_a_model_from_another_session_builds_its_head_change(
        mismatch: dict[str, dict[str, str]]) -> None:
    """The loss/head change rebuilds the head of a model whose layers already hold the name
    Keras would give a new Dense: the change must build (and every other)."""
    out = map_in_processes(failed_builds, [(mismatch["mismatch"], "mismatch"),
                                           (mismatch["slow"], "slow")], 2)[0]
    assert out["clash"]  # the trap is real: Keras' next automatic name is the model's own
    assert "fit_loss" in out["names"]
    assert out["failed"] == {} and out["built"] == out["planned"]


def test_a_change_that_fails_costs_only_itself(mismatch: dict[str, dict[str, str]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One change cannot be built, another cannot be trained: each gets its own `error`
    row with the reason; the baseline and every other change train and are judged."""
    subject = load_subject(spec_of(mismatch["slow"], "slow"))
    own_plan_model, own_train = variants.plan_model, race.train_together

    def plan_model(subject: Any, split: Any, plan: Any) -> Any:
        if plan.name == "nonsaturating":
            raise ValueError("injected: this architecture cannot be cloned")
        return own_plan_model(subject, split, plan)

    def train_together(jobs: list[Any], *args: Any, **kw: Any) -> Any:
        if any(type(job.optimizer).__name__ == "Adam" for job in jobs):
            raise RuntimeError("injected: the Adam graph does not trace")
        return own_train(jobs, *args, **kw)

    monkeypatch.setattr(variants, "plan_model", plan_model)
    monkeypatch.setattr(race, "train_together", train_together)
    result = probes.run_probe(probes.get("retrain"), subject,
                              probes.get("retrain").settings(seed=0))
    assert result.status == "ok", result.error
    errors = {m.metric: m.detail for m in metric_rows({"retrain": result})
              if m.metric.endswith("." + keys.ERROR)}
    assert set(errors) == {keys.plan_metric("nonsaturating", keys.ERROR),
                           keys.plan_metric("adam", keys.ERROR)}
    assert "cannot build this change" in errors["nonsaturating.error"]
    assert "injected: the Adam graph does not trace" in errors["adam.error"]
    trained = {name for name in result.details[keys.VARIANTS]
               if keys.ERROR not in result.details[keys.VARIANTS][name]}
    assert "baseline" in trained and any(n.startswith("lr_up") for n in trained)
    assert keys.seed_skill("baseline", 0) in result.metrics
    assert not any(k.startswith("adam.skill") for k in result.metrics)
    # the rest is judged: the model's rate (SGD at 1e-6) is still found
    judged = diagnose({"retrain": result}, subject.task)
    assert judged.primary_fault == "lr_too_low"


def test_every_counterfactual_builds_for_every_zoo_model_in_a_fresh_session(
        zoo_cases: dict[str, Any]) -> None:
    """The contract: each zoo model that can be retrained, loaded as a new session loads
    it, builds every change the vocabulary plans for it, and every pair of them."""
    cases = [c for c in zoo_cases.values() if c.retrainable]
    specs = [({"spec": CaseSpec(**c.spec_fields())}, c.name) for c in cases]
    done = map_in_processes(failed_builds, specs, ZOO_WORKERS)
    failures = {c.name: out["failed"] for c, out in zip(cases, done, strict=True)
                if out["failed"]}
    assert failures == {}
    assert all(out["built"] == out["planned"] > 1 for out in done)
    assert any(out["clash"] for out in done)  # the zoo meets the naming trap too
