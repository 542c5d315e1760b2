"""Manifest errors a person can act on: one line per pydantic error, naming the key's path
(`cases[3].lable`), what was expected and what was received, with a hint for a misspelt key
read off the manifest's own types."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel

__all__ = ["describe"]


def describe(error: Any, root: type[BaseModel], kinds: dict[str, type[BaseModel]]) -> str:
    """`cases[3].lable: unknown key; did you mean 'label'?` from one pydantic error of a
    `root` model; `kinds` are the tags of its tagged unions (a location part, not a key)."""
    loc = tuple(error["loc"])
    path = _loc_text(loc, kinds)
    if error["type"] == "extra_forbidden":
        known = _keys_at(root, loc[:-1], kinds)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"valid keys are {sorted(known)}"
        return f"{path}: unknown key; {hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{path}: required key missing"
    received = error.get("input")
    if error["type"].startswith("value_error") or isinstance(received, dict):
        return f"{path}: {message}" if path else message
    return f"{path}: {message[0].lower()}{message[1:]}; received {received!r}"


def _loc_text(loc: tuple[Any, ...], kinds: dict[str, type[BaseModel]]) -> str:
    text = ""
    for part in loc:
        if part in kinds:  # the union member pydantic names: not a key
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...],
             kinds: dict[str, type[BaseModel]]) -> list[str]:
    """The valid keys of the mapping at `loc` inside `model` (by following field types)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if part in kinds:
            current = kinds[part]
            continue
        field = _field_by_key(current, str(part))
        if field is None:
            return []
        current = _inner_model(field.annotation)
        if current is None:
            return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None` or `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
