"""Importing Keras without what a worker never uses.

Keras 3 imports, on every `import keras`, three things a Flatline worker does not touch
(measured with `python -X importtime -c "import tensorflow, keras"`, of a ~4.5 s start):
- `keras._tf_keras`, the `tf.keras`-shaped namespace (~1.5 s with what it pulls in);
- `keras.wrappers`, its scikit-learn wrappers, which import scikit-learn (~0.9 s);
- `matplotlib.pyplot`, for `keras.visualization`'s galleries (~0.6 s).
`defer_unused_imports()` puts a stand-in for each in `sys.modules` before Keras is imported;
the real module is imported the first time anything reads from the stand-in (`tf.keras.layers`,
`keras.wrappers.SKLearnClassifier`, `plt.figure`), so nothing stops working. scikit-learn itself
still loads when the retrain probe's reference learner first needs it. This is not `tf_keras`,
the Keras 2 package: that one is imported only when a Keras 2 model arrives (`models.keras2`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

__all__ = ["DEFERRED", "Deferred", "defer_unused_imports"]

#: (parent package, module): what a worker imports only when something reads from it
DEFERRED = (("keras", "keras._tf_keras"), ("keras", "keras.wrappers"),
            ("matplotlib", "matplotlib.pyplot"))


class Deferred(types.ModuleType):
    """Stands in `sys.modules` for a module until something reads one of its attributes; then
    the real module is imported (once) and every read goes to it."""

    def __init__(self, spec: importlib.machinery.ModuleSpec) -> None:
        super().__init__(spec.name)
        # what the import system reads without loading: `import a.b` and `from a import b`
        # find the module in sys.modules and look only at these
        self.__spec__, self.__loader__ = spec, spec.loader
        if spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)

    def __getattr__(self, attr: str) -> Any:  # only for attributes this stand-in lacks
        return getattr(self.deferred_module(), attr)

    def deferred_module(self) -> types.ModuleType:
        """The real module, imported the first time it is needed."""
        real = self.__dict__.get("_real")
        if real is None:
            name = self.__spec__.name
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)
            self.__dict__["_real"] = real
        return real


def defer_unused_imports() -> bool:
    """Put the stand-ins of `DEFERRED` in place; False (and nothing done) when Keras is
    already imported. A module whose package is not installed, or already imported, is left
    as it is."""
    if "keras" in sys.modules:
        return False
    placed = False
    for parent, name in DEFERRED:
        if name in sys.modules:
            continue
        parent_spec = importlib.util.find_spec(parent)  # a top-level name: nothing imported
        if parent_spec is None or parent_spec.submodule_search_locations is None:
            continue
        spec = importlib.machinery.PathFinder.find_spec(
            name, parent_spec.submodule_search_locations)
        if spec is not None and spec.loader is not None:
            sys.modules[name] = Deferred(spec)
            placed = True
    return placed
