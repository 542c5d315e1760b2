"""How a model was (or would be) trained, as the retrain probe reproduces it: the case's
`training:` settings over the model's saved compile config (its loss for the audited head, its
optimizer and that optimizer's plain settings) over defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.manifest.case import CaseSpec, Task
from audit.models.vocab import canonical_loss


@dataclass(frozen=True)
class TrainingConfig:
    """How the model was (or would be) trained: the retraining probe reproduces this."""

    optimizer: str
    learning_rate: float
    loss: str
    from_logits: bool
    epochs: int | None
    batch_size: int
    source: str  # "compile_config", "spec" or "default": where the optimizer/loss came from
    optimizer_config: tuple[tuple[str, Any], ...] = ()  # the saved optimizer's other settings


def has_linear_single_output(model: Any) -> bool:
    last = model.layers[-1] if model.layers else None
    activation = getattr(getattr(last, "activation", None), "__name__", "linear")
    return int(model.outputs[0].shape[-1] or 1) == 1 and activation == "linear"


def compiled_loss_name(model: Any, head: int = 0,
                        head_name: str | None = None) -> tuple[str | None, bool]:
    """The loss the model was compiled with for output `head` (a multi-output model keeps
    one per head, by name or position), and whether it expects logits."""
    try:
        config = model.get_compile_config() or {}
    except Exception:
        config = {}
    loss = config.get("loss")
    if isinstance(loss, dict) and "class_name" not in loss and "config" not in loss:
        loss = loss.get(head_name) if head_name in loss else None
    elif isinstance(loss, (list, tuple)):
        loss = loss[head] if head < len(loss) else None
    from_logits = False
    if isinstance(loss, dict):
        inner = loss.get("config")
        if isinstance(inner, dict):
            from_logits = bool(inner.get("from_logits", False))
            loss = loss.get("class_name")
        else:
            loss = inner if isinstance(inner, str) else loss.get("class_name")
    obj = getattr(model, "loss", None)
    if loss is None and obj is not None and not isinstance(obj, (dict, list, tuple)):
        loss = obj if isinstance(obj, str) else getattr(obj, "__name__", type(obj).__name__)
        from_logits = bool(getattr(obj, "from_logits", False))
    if not isinstance(loss, str):
        return None, False
    return canonical_loss(loss), from_logits


_OPTIMIZER_KEYS = ("momentum", "nesterov", "beta_1", "beta_2", "epsilon", "rho", "amsgrad",
                   "clipnorm", "clipvalue", "global_clipnorm", "weight_decay")


def _compiled_optimizer(model: Any) -> tuple[str | None, float | None, dict[str, Any]]:
    """The saved optimizer's family, learning rate and other plain settings (momentum, ...)."""
    try:
        config = model.get_compile_config() or {}
    except Exception:
        config = {}
    opt = config.get("optimizer")
    if isinstance(opt, dict):
        name = str(opt.get("class_name", "")).lower() or None
        inner = opt.get("config", {}) or {}
        lr = inner.get("learning_rate")
        extra = {k: inner[k] for k in _OPTIMIZER_KEYS
                 if inner.get(k) is not None and isinstance(inner[k], (int, float, bool))}
        return name, float(lr) if isinstance(lr, (int, float)) else None, extra
    if isinstance(opt, str):
        return opt.lower(), None, {}
    return None, None, {}


def default_loss(task: Task) -> str:
    return {
        "regression": "mse",
        "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy",
    }[task]


def resolve_training(model: Any, spec: CaseSpec, task: Task, head: int = 0,
                     head_name: str | None = None) -> TrainingConfig:
    """The spec's training settings over the model's compile config (for the audited head)
    over defaults."""
    opt_name, opt_lr, opt_extra = _compiled_optimizer(model)
    loss_name, from_logits = compiled_loss_name(model, head, head_name)
    source = "compile_config" if opt_name and loss_name else "default"
    t = spec.training
    if t.optimizer or t.loss:
        source = "spec"
    optimizer = (t.optimizer or opt_name or "adam").lower()
    learning_rate = t.learning_rate or opt_lr or (0.01 if optimizer == "sgd" else 0.001)
    loss = canonical_loss(t.loss) if t.loss else (loss_name or default_loss(task))
    return TrainingConfig(
        optimizer=optimizer,
        learning_rate=float(learning_rate),
        loss=loss,
        from_logits=from_logits if not t.loss else False,
        epochs=t.epochs,
        batch_size=t.batch_size or 32,
        source=source,
        optimizer_config=tuple(sorted(opt_extra.items())) if optimizer == opt_name else (),
    )
