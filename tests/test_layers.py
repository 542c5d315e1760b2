"""The layering of docs/design.md, read off the code: every import inside `audit` (the ones
inside functions too; `if TYPE_CHECKING:` blocks aside, they never run) goes to its own layer
or one below, and no modules import each other in a circle. A new import that runs against
the layers fails here, with the file, the line and both layers named."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audit"

#: top to bottom, as docs/design.md draws them; a module may import its own layer and below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("audit",),  # the package's face: `from audit import audit_case, CaseSpec, ...`
    ("audit.cli",),
    ("audit.fleet", "audit.jobs", "audit.zoo"),
    ("audit.engine",),
    ("audit.diagnose",),
    ("audit.probes",),
    ("audit.mlflow",),  # the registry source, artifacts, publishing (writes the reports)
    ("audit.reports",),  # names each fault's fix, so the vocabulary is below it
    ("audit.faults",),
    ("audit.subject",),
    ("audit.models",),
    ("audit.manifest",),
    ("audit.io",),
    ("audit.evidence", "audit.util"),
    ("audit.errors",),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def layer_of(name: str) -> int:
    best, rank = "", None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    assert rank is not None, f"{name} is in no layer: add it to LAYERS and docs/design.md"
    return rank


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, imported audit module) of every import that can run."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("audit"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "audit" or node.module.startswith("audit.")):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, list[tuple[int, str]]]:
    return {_module_name(p): _imports(ast.parse(p.read_text(), str(p)))
            for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_goes_to_its_own_layer_or_below() -> None:
    upward = []
    for module, imports in _graph().items():
        for line, target in imports:
            if target == module or module.startswith(target + "."):
                continue  # a package's own face, imported by its modules
            if layer_of(target) < layer_of(module):
                upward.append(f"{module}:{line} imports {target} "
                              f"(layer {layer_of(target)} above {layer_of(module)})")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = {m: {t for _, t in imps if t != m and not m.startswith(t + ".")}
             for m, imps in _graph().items()}
    state: dict[str, int] = {}
    circles: list[str] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_layers_test_sees_an_upward_import() -> None:
    """The checker itself: an import from a fault unit up to a probe is caught."""
    tree = ast.parse("from audit.probes.data import run\n"
                     "from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from audit.engine import audit_case\n")
    imports = _imports(tree)
    assert imports == [(1, "audit.probes.data")]
    assert layer_of("audit.probes.data") < layer_of("audit.faults.dataset")


def test_the_top_level_holds_packages_and_three_modules() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert modules == ["__init__.py", "engine.py", "errors.py"]
    long = [f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450]
    assert not long, f"modules over 450 lines: {long}"
    names = [p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


#: imported inside functions on purpose: optional (mlflow, tf_keras, cleanlab, ...) or
#: seconds of start-up the CLI and the driver never pay (TensorFlow, Keras, Ray, pyarrow, ...)
DEFERRED = frozenset({"tensorflow", "keras", "tf_keras", "mlflow", "ray", "sklearn", "cleanlab",
                      "duckdb", "pyarrow", "vl_convert", "jinja2", "h5py", "scipy"})


def test_imports_inside_functions_say_why() -> None:
    """Imports are at the top of the file, except the deferred libraries above and imports
    whose line (or the one before) says why in a comment."""
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()

        def visit(node: ast.AST, in_function: bool, path: Path = path,
                  lines: list[str] = lines) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _type_checking(child):
                    continue
                if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                    name = (child.module if isinstance(child, ast.ImportFrom)
                            else child.names[0].name) or ""
                    said = "#" in lines[child.lineno - 1] or lines[child.lineno - 2].strip(
                        ).startswith("#")
                    if name.split(".")[0] not in DEFERRED and not said:
                        silent.append(f"{path.relative_to(PACKAGE)}:{child.lineno}: "
                                      f"{lines[child.lineno - 1].strip()}")
                visit(child, in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef)))

        visit(ast.parse("\n".join(lines)), False)
    assert not silent, "imports inside functions with no reason given:\n" + "\n".join(silent)


def test_every_exception_flatline_defines_is_of_its_family() -> None:
    import builtins
    import inspect

    from audit import errors

    defined = [cls for name, cls in inspect.getmembers(errors, inspect.isclass)
               if cls.__module__ == "audit.errors"]
    assert len(defined) >= 15
    assert all(issubclass(cls, errors.FlatlineError) for cls in defined)
    # the builtin bases callers already catch are kept
    assert issubclass(errors.ManifestError, ValueError)
    assert issubclass(errors.LocationError, OSError)
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and path.name != "errors.py" and any(
                    isinstance(getattr(builtins, getattr(b, "id", ""), None), type)
                    and issubclass(getattr(builtins, b.id), BaseException)
                    for b in node.bases):
                stray.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert not stray, f"exceptions outside the family: {stray}"


def test_an_old_import_path_still_works_and_says_where_it_went() -> None:
    import importlib
    import sys
    import warnings

    from audit.manifest import schema

    sys.modules.pop("audit.spec", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("audit.spec")
    assert old is schema
    assert any(issubclass(w.category, DeprecationWarning) and "audit.manifest.schema" in
               str(w.message) for w in caught)
