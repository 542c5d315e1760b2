"""Labels encoded in the model's own class order, as the manifest declares it (`classes:`).

Without `classes:`, string labels are encoded in sorted order and integer labels as they are;
a model trained under another order then looks skill-less. `classes:` lists the label of
output unit 0, 1, ...; labels match it as text, so `2`, `2.0` and `'2'` are the same class.
Numpy only: `subject` imports this while loading a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audit.errors import ClassesError

SHOWN = 5  # unknown label values named in an error


def class_key(value: Any) -> str:
    """How a label value is matched to `classes:`: integral numbers as integers, booleans as
`true`/`false`, text as is."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (bool, np.bool_)):  # a CSV's true/false column
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def plain(value: Any) -> str | int:
    """A class name as the report shows it: an integer when it is one, else text."""
    key = class_key(value)
    try:
        return int(key) if str(int(key)) == key else key
    except ValueError:
        return key


def check_units(classes: Sequence[str | int], units: int, where: str) -> None:
    """One class per output unit; a single unit (sigmoid) scores two classes."""
    wanted = 2 if units == 1 else units
    if len(classes) != wanted:
        per = ("a single output unit scores two classes" if units == 1
               else "list one class per output unit, in the units' order")
        raise ClassesError(f"{where}: `classes:` lists {len(classes)} classes but the model has "
                           f"{units} output unit(s); {per}; received classes={list(classes)}")


def encode(y: np.ndarray, classes: Sequence[str | int], where: str,
           label: str) -> tuple[np.ndarray, list[str]]:
    """Class indices of the labels `y` in the order `classes`, and the class names.

    Raises `ClassesError` naming the (first few) label values that `classes:` does not list."""
    if y.ndim == 2 and y.shape[1] > 1:
        raise ClassesError(f"{where}: `classes:` orders the values of one label column, but "
                           f"column {label!r} holds rows of {y.shape[1]} values (one-hot?)")
    flat = y.reshape(len(y))
    if flat.dtype != object and flat.dtype.kind in "fc" and not np.all(np.isfinite(flat)):
        raise ClassesError(f"{where}: label column {label!r} has "
                           f"{int(np.sum(~np.isfinite(flat)))} NaN/inf values")
    if flat.dtype == object and any(v is None for v in flat):
        raise ClassesError(f"{where}: label column {label!r} has missing values")
    index = {class_key(c): i for i, c in enumerate(classes)}
    keys = [class_key(v) for v in flat]
    unknown = sorted(set(keys) - set(index))
    if unknown:
        more = f" (and {len(unknown) - SHOWN} more)" if len(unknown) > SHOWN else ""
        raise ClassesError(f"{where}: label column {label!r} holds values that `classes:` does "
                           f"not list: {unknown[:SHOWN]}{more}; classes are {list(classes)}")
    return (np.array([index[k] for k in keys], dtype=np.int64),
            [class_key(c) for c in classes])
