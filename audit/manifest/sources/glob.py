"""The glob source: every model file matching a glob (local folder or bucket), each with its
data (and TFRecord schema) from a template (`{stem}`, `{parent}`, `{name}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.errors import ManifestError, ManifestFilesMissing
from audit.io.locations import expand_glob, parent_name, resolve_location, stem
from audit.manifest.case import CaseSpec
from audit.manifest.sources import SourceContext
from audit.util.text import one_line

if TYPE_CHECKING:  # the entry's type only: sources take plain settings, not the schema
    from audit.manifest.schema import FleetEntry

__all__ = ["expand"]


def expand(entry: FleetEntry, context: SourceContext) -> list[CaseSpec]:
    """One case per matching model, sorted by path. Raises `ManifestFilesMissing` when
    nothing matches (or the store cannot be listed) and `ManifestError` for a bad template."""
    where = context.where
    try:
        models = expand_glob(resolve_location(entry.models, context.base_dir))
    except (OSError, ValueError) as exc:  # an object store this machine cannot reach
        raise ManifestFilesMissing(
            f"{where}.models: cannot list {entry.models!r} from here "
            f"({one_line(exc, 200)})"
        ) from None
    if not models:
        raise ManifestFilesMissing(
            f"{where}.models: no files match {entry.models!r} (looked in {context.base_dir})"
        )
    specs = []
    for model in models:
        values = {"stem": stem(model), "parent": parent_name(model)}
        try:
            name = entry.name.format(**values)
            values["name"] = name
            data = entry.data.format(**values)
            schema = entry.data_schema.format(**values) if entry.data_schema else None
        except (KeyError, IndexError, ValueError) as exc:
            raise ManifestError(
                f"{where}: bad template ({exc}); templates may use {{stem}}, {{parent}} "
                f"and {{name}}; received name={entry.name!r}, data={entry.data!r}"
            ) from None
        specs.append(context.case(entry, name, model, data, data_schema=schema))
    return specs
