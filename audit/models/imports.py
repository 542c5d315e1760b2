"""Importing Keras without what a worker never uses.

Keras 3's `keras/__init__.py` imports `keras._tf_keras`, the `tf.keras`-shaped namespace, on
every import (about 1.5 s of a worker's 3.9 s start, measured with `python -X importtime -c
"import tensorflow"`). Flatline calls Keras 3 directly, so that namespace can load the first
time something touches it (`tf.keras` still works: it loads then). This is not `tf_keras`, the
Keras 2 package: that one is imported only when a Keras 2 model arrives (`models.keras2`).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys

__all__ = ["defer_keras_compat_namespace"]


def defer_keras_compat_namespace() -> bool:
    """Import Keras with `keras._tf_keras` loaded lazily; False (and nothing done) when Keras
    is already imported or its layout is not the one expected."""
    if "keras" in sys.modules:
        return False
    keras_spec = importlib.util.find_spec("keras")
    if keras_spec is None or keras_spec.loader is None:
        return False
    shim = importlib.machinery.PathFinder.find_spec(
        "keras._tf_keras", keras_spec.submodule_search_locations)
    if shim is None or shim.loader is None:
        return False
    shim.loader = importlib.util.LazyLoader(shim.loader)
    lazy = importlib.util.module_from_spec(shim)
    shim.loader.exec_module(lazy)  # a LazyLoader only arms the module here
    keras = importlib.util.module_from_spec(keras_spec)
    # keras/__init__.py does `from keras import _tf_keras`: found as an attribute, it is left
    # unloaded; the import system would touch it (and load it) otherwise
    keras._tf_keras = lazy  # type: ignore[attr-defined]
    sys.modules["keras"], sys.modules["keras._tf_keras"] = keras, lazy
    try:
        keras_spec.loader.exec_module(keras)
    except BaseException:
        sys.modules.pop("keras", None)
        sys.modules.pop("keras._tf_keras", None)
        raise
    return True
