"""The fused trainer computes what `model.fit` computes."""

from __future__ import annotations

import numpy as np
import pytest

from audit.probes.retrain.trainer import TrainJob, train_together
from audit.probes.tfutil import make_loss, make_optimizer


def _model(seed: int) -> object:
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(1)])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_full_batch_training_matches_model_fit(optimizer: str) -> None:
    """With one batch per epoch, shuffling cannot matter: the weights must agree with fit."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 1))).astype(np.float32)
    ours, theirs = _model(1), _model(1)
    job = TrainJob(ours, make_optimizer(optimizer, 0.05), make_loss("mse"), x, y, epochs=12,
                   seed=0)
    log = train_together([job], batch_size=64, chunks=3)[0]
    theirs.compile(make_optimizer(optimizer, 0.05), "mse")
    history = theirs.fit(x, y, epochs=12, batch_size=64, shuffle=False, verbose=0)
    for a, b in zip(log.weights, theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert log.epochs_run == 12 and log.stopped == "finished"
    assert log.losses[-1] == pytest.approx(history.history["loss"][-1], rel=1e-4)


def test_jobs_stop_on_their_own_epoch_count_and_on_request() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = x[:, :1].copy()
    jobs = [TrainJob(_model(s), make_optimizer("adam", 0.01), make_loss("mse"), x, y,
                     epochs=e, seed=s) for s, e in ((0, 3), (1, 8), (2, 8))]
    before = [j.model.get_weights() for j in jobs]
    logs = train_together(jobs, batch_size=16, chunks=4,
                          should_stop=lambda i, _log: "early_success" if i == 2 else None)
    assert [log.epochs_run for log in logs] == [3, 8, 2]
    assert [log.stopped for log in logs] == ["finished", "finished", "early_success"]
    for job, log, w in zip(jobs, logs, before, strict=True):
        assert not np.allclose(log.weights[0], w[0])  # trained ...
        for a, b in zip(job.model.get_weights(), w, strict=True):  # ... and the model untouched
            np.testing.assert_array_equal(a, b)  # exact: untouched values, no arithmetic


def test_divergence_is_reported() -> None:
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(32, 4)) * 100).astype(np.float32)
    y = x[:, :1] * 100
    job = TrainJob(_model(0), make_optimizer("sgd", 10.0), make_loss("mse"), x, y, epochs=20,
                   seed=0)
    log = train_together([job], batch_size=8, chunks=4)[0]
    assert log.stopped == "diverged" and log.epochs_run < 20


def test_minibatches_without_shuffling_match_fit_step_for_step() -> None:
    """A partial last batch, momentum and the epoch loss weighted by batch size, as fit has it."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(70, 4)).astype(np.float32)
    y = (x[:, :1] * 2 - x[:, 1:2]).astype(np.float32)
    ours, theirs = _model(4), _model(4)
    optimizer = lambda: make_optimizer("sgd", 0.05, extra=(("momentum", 0.9),))  # noqa: E731
    job = TrainJob(ours, optimizer(), make_loss("mse"), x, y, epochs=5, seed=0, shuffle=False)
    log = train_together([job], batch_size=16)[0]
    theirs.compile(optimizer(), "mse")
    history = theirs.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(log.weights, theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert log.losses[-1] == pytest.approx(history.history["loss"][-1], rel=1e-4)


def test_stacked_members_train_exactly_like_separate_models() -> None:
    """Members with their own learning rate, clipping, weights, epochs, activation and even
    optimizer family, stacked as one, train exactly as separate models do."""
    import keras

    from audit.probes.retrain.ensemble import stack_key

    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = (x[:, :1] - x[:, 1:2] ** 2).astype(np.float32)
    momentum = (("momentum", 0.9),)
    settings = [("adam", 0.01, None, 6, "tanh", ()), ("adam", 0.05, None, 4, "tanh", ()),
                ("adam", 0.01, 0.1, 6, "relu", ()), ("sgd", 0.05, None, 5, "tanh", momentum),
                ("rmsprop", 0.003, None, 6, "sigmoid", ()),
                ("adamw", 0.01, None, 6, "tanh", (("weight_decay", 0.1),)),
                ("nadam", 0.01, 0.5, 5, "relu", ()), ("adagrad", 0.05, None, 6, "tanh", ())]

    def jobs(functional: bool) -> list[TrainJob]:
        out = []
        for seed, (name, lr, clip, epochs, act, extra) in enumerate(settings):
            keras.utils.set_random_seed(seed)
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation=act),
                                      keras.layers.Dense(1)])
            if functional:  # the same network as a functional model: trains un-stacked
                model = keras.Model(model.inputs[0], model.outputs[0])
            out.append(TrainJob(model, make_optimizer(name, lr, clip, extra), make_loss("mse"),
                                x, y, epochs=epochs, seed=seed))
        return out

    stacked, separate = jobs(False), jobs(True)
    assert len({stack_key(j) for j in stacked}) == 1
    assert all(stack_key(j) is None for j in separate)
    logs_a = train_together(stacked, batch_size=16)
    logs_b = train_together(separate, batch_size=16)
    for la, lb in zip(logs_a, logs_b, strict=True):
        assert la.epochs_run == lb.epochs_run
        for wa, wb in zip(la.weights, lb.weights, strict=True):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
        assert la.losses[-1] == pytest.approx(lb.losses[-1], rel=1e-4)


def test_activation_layers_fold_into_the_stack_by_name() -> None:
    """Dense + Activation("relu") and Dense + Activation("tanh") stack together, each member
    keeping its own activation."""
    import keras

    from audit.probes.dense_stack import dense_stack

    keys = []
    for act in ("relu", "tanh"):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                                  keras.layers.Activation(act), keras.layers.Dense(1)])
        keys.append(dense_stack(model)[0][2])
    assert keys[0] != keys[1] and keys[0].endswith('>"relu"')


@pytest.mark.parametrize("functional", [False, True])
def test_jobs_sharing_one_model_train_from_their_own_weights(functional: bool) -> None:
    """One model object and one optimizer serve many jobs: each trains from its own start,
    exactly as if it had a model of its own, and the shared model is never changed."""
    import keras

    rng = np.random.default_rng(6)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:2]).astype(np.float32)
    x_val = rng.normal(size=(10, 4)).astype(np.float32)

    def as_built(model: object) -> object:
        return keras.Model(model.inputs[0], model.outputs[0]) if functional else model

    shared, optimizer = as_built(_model(0)), make_optimizer("adam", 0.02)
    untouched = shared.get_weights()
    starts = [_model(s).get_weights() for s in (1, 2)]
    together = [TrainJob(shared, optimizer, make_loss("mse"), x, y, epochs=5, seed=s,
                         weights=w, x_val=x_val) for s, w in zip((1, 2), starts, strict=True)]
    alone = []
    for s, w in zip((1, 2), starts, strict=True):
        own = as_built(_model(9))
        own.set_weights(w)
        alone.append(TrainJob(own, make_optimizer("adam", 0.02), make_loss("mse"), x, y,
                              epochs=5, seed=s))
    logs_a = train_together(together, batch_size=16)
    logs_b = train_together(alone, batch_size=16)
    for la, lb in zip(logs_a, logs_b, strict=True):
        for wa, wb in zip(la.weights, lb.weights, strict=True):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
        shared.set_weights(la.weights)
        np.testing.assert_allclose(la.outputs, np.asarray(shared(x_val)), rtol=1e-4, atol=1e-5)
        assert lb.outputs is None  # no validation rows given
    assert not np.allclose(logs_a[0].weights[0], logs_a[1].weights[0])
    shared.set_weights(untouched)


def test_a_later_call_reuses_the_stacked_graph_and_trains_as_a_fresh_one() -> None:
    """Jobs that fit an earlier call's stacked ensemble (fewer members, optimizer families and
    activations it has) train in its traced loop, padded, with the results of a fresh one;
    their weights, read later, are theirs even after the ensemble was loaded again."""
    import keras

    from audit.probes.retrain.stacked_backend import STACKED

    rng = np.random.default_rng(5)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x[:, :1] - x[:, 2:3]).astype(np.float32)

    def model(activation: str) -> object:
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation=activation),
                                 keras.layers.Dense(1)])

    def jobs(specs: list[tuple[str, str, float, float | None]]) -> list[TrainJob]:
        return [TrainJob(model(act), make_optimizer(opt, rate, clip), make_loss("mse"), x, y,
                         epochs=6, seed=k, x_val=x[:8])
                for k, (act, opt, rate, clip) in enumerate(specs)]

    first = [("tanh", "sgd", 0.05, None), ("relu", "adam", 0.01, 1.0),
             ("tanh", "adam", 0.02, None), ("relu", "sgd", 0.1, None)]
    later = [("relu", "adam", 0.03, 0.5), ("tanh", "sgd", 0.2, None)]
    graphs: dict = {}
    train_together(jobs(first), batch_size=16, graphs=graphs)
    reused = train_together(jobs(later), batch_size=16, graphs=graphs)
    assert len(graphs[STACKED]) == 1  # no second graph was traced
    train_together(jobs(first), batch_size=16, graphs=graphs)  # loads other members again
    fresh = train_together(jobs(later), batch_size=16)
    for a, b in zip(reused, fresh, strict=True):
        assert a.losses == pytest.approx(b.losses, rel=1e-5)
        np.testing.assert_allclose(a.outputs, b.outputs, rtol=1e-5, atol=1e-6)
        for wa, wb in zip(a.weights, b.weights, strict=True):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # a new activation does not fit: a second graph
    train_together(jobs([("sigmoid", "sgd", 0.05, None), ("tanh", "sgd", 0.05, None)]),
                   batch_size=16, graphs=graphs)
    assert len(graphs[STACKED]) == 2


@pytest.mark.parametrize("kind", ["conv", "embedding"])
def test_clipping_and_class_weights_share_the_graph_and_match_fit(kind: str) -> None:
    """A model that cannot be stacked trains in one traced graph whatever its jobs' learning
    rates, sample weights and clipping norms (inputs of the graph), and each job computes
    what `model.fit` with that clipnorm and those sample weights computes (an embedding's
    gradient is sparse, with repeated rows)."""
    import keras

    from audit.probes.retrain.graph_backend import trace_key

    rng = np.random.default_rng(8)
    if kind == "conv":
        x = rng.normal(size=(40, 6, 1)).astype(np.float32)
        y = (x[:, :2, 0].sum(axis=1, keepdims=True) * 3).astype(np.float32)
    else:
        x = rng.integers(0, 12, size=(40, 6)).astype(np.int32)
        y = ((x < 4).sum(axis=1, keepdims=True) * 2.0).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, size=40).astype(np.float32)

    def conv() -> object:
        keras.utils.set_random_seed(3)
        if kind == "embedding":
            return keras.Sequential([keras.Input((6,), dtype="int32"),
                                     keras.layers.Embedding(12, 4),
                                     keras.layers.GlobalAveragePooling1D(),
                                     keras.layers.Dense(1)])
        return keras.Sequential([keras.Input((6, 1)), keras.layers.Conv1D(4, 3, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(1)])

    specs = [(0.05, None, None), (0.02, 0.1, weights), (0.05, 0.5, None)]
    jobs = [TrainJob(conv(), make_optimizer("sgd", rate, clip), make_loss("mse"), x, y,
                     epochs=4, seed=0, sample_weight=w, shuffle=False)
            for rate, clip, w in specs]
    assert len({trace_key(job) for job in jobs}) == 1
    graphs: dict = {}
    logs = train_together(jobs, batch_size=16, graphs=graphs)
    assert len(graphs) == 1  # one traced graph
    for (rate, clip, w), log in zip(specs, logs, strict=True):
        theirs = conv()
        theirs.compile(make_optimizer("sgd", rate, clip), "mse")
        history = theirs.fit(x, y, sample_weight=w, epochs=4, batch_size=16, shuffle=False,
                             verbose=0)
        for a, b in zip(log.weights, theirs.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        assert log.losses[-1] == pytest.approx(history.history["loss"][-1], rel=1e-4)
    assert not np.allclose(logs[0].weights[0], logs[2].weights[0])  # clipping changed it
