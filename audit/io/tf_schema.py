"""A TFX/TFDV schema (`schema.pbtxt`, or its binary `.pb`) as the feature spec the TFRecord
reader parses with: each feature's value list, its fixed shape where the schema gives one,
and whether it holds encoded images.

Read with `tensorflow-metadata`'s own `Schema` proto, so a file TFDV wrote (`write_schema_text`)
or ExampleGen/SchemaGen produced parses exactly as TFX reads it. A schema that does not parse,
or that says nothing about a feature's type, is one `TableError` line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.errors import LocationError, TableError
from audit.io import locations
from audit.util.text import one_line

__all__ = ["SchemaFeature", "read_schema"]

#: the schema's FeatureType -> the tf.Example value list it means
_KINDS = {"FLOAT": "float_list", "INT": "int64_list", "BYTES": "bytes_list"}
MAX_SCHEMA_BYTES = 64 << 20


@dataclass(frozen=True)
class SchemaFeature:
    """One feature as the schema declares it."""

    name: str
    kind: str  # float_list | int64_list | bytes_list
    type_name: str  # the schema's own word (FLOAT, INT, BYTES), for messages
    shape: tuple[int, ...] | None = None  # a fixed shape (`shape { dim ... }`), else None
    image: bool = False  # `image_domain`: a bytes_list of encoded images


def read_schema(location: str) -> dict[str, SchemaFeature]:
    """The schema's features by name, in the schema's order. Raises `LocationError` when the
    file is not there and `TableError` when it is not a TFX schema."""
    # TFX's own schema proto and its text format: only a case that names a schema loads them
    from google.protobuf import message, text_format
    from tensorflow_metadata.proto.v0 import schema_pb2  # tensorflow-metadata: TFX schemas

    try:
        fs, path = locations.filesystem(location)
        with fs.open_input_stream(path, compression=None) as stream:
            raw = stream.read(MAX_SCHEMA_BYTES)
    except (OSError, ValueError) as exc:
        raise LocationError(f"{location}: schema file cannot be read ({one_line(exc)})") from None
    schema = schema_pb2.Schema()
    try:
        if locations.without_query(location).endswith(".pb"):
            schema.ParseFromString(raw)
        else:
            text_format.Parse(raw.decode("utf-8"), schema)
    except (text_format.ParseError, message.DecodeError, UnicodeDecodeError) as exc:
        raise TableError(f"{location}: not a TFX schema (schema.pbtxt, tensorflow_metadata "
                         f"Schema): {one_line(exc)}") from None
    features: dict[str, SchemaFeature] = {}
    for feature in schema.feature:
        type_name = schema_pb2.FeatureType.Name(feature.type)
        if type_name not in _KINDS:
            raise TableError(f"{location}: feature {feature.name!r} has type {type_name}; "
                             f"expected one of {sorted(_KINDS)}")
        shape = (tuple(int(d.size) for d in feature.shape.dim)
                 if feature.HasField("shape") else None)
        image = feature.WhichOneof("domain_info") == "image_domain"
        features[feature.name] = SchemaFeature(feature.name, _KINDS[type_name], type_name,
                                               shape, image)
    if not features:
        raise TableError(f"{location}: the schema lists no features")
    return features
