"""Generate the JSON Schema of the policy file from the typed model.

``policies/schema.json`` is this module's output, committed so editors and the
force's tooling can check a policy before it reaches a terminal; a test keeps
the file in sync. Regenerate with ``python -W ignore -m engine.policy.json_schema > policies/schema.json``.
The schema covers structure only: cross-references (a rule naming a rank that
exists) are checked by the loader and described in the field descriptions.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

from engine.policy.model import Policy

SCHEMA_ID = "urn:rfr:policy:schema:1"

_CONSTRAINT_KEYWORDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusive_minimum": "exclusiveMinimum",
    "pattern": "pattern",
    "min_length": "minLength",
    "min_items": "minItems",
}


def _doc(cls: type[Any]) -> str:
    return " ".join((cls.__doc__ or "").split())


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [_type_schema(a, defs) for a in get_args(tp) if a is not type(None)]
        return {"anyOf": [*options, {"type": "null"}]}
    if origin is Literal:
        values = list(get_args(tp))
        return {"const": values[0]} if len(values) == 1 else {"enum": values}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(get_args(tp)[0], defs)}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # reserve the name first: a model may refer to itself
            defs[tp.__name__] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON Schema for {tp!r}")


def _constrain(schema: dict[str, Any], metadata: typing.Mapping[str, Any]) -> dict[str, Any]:
    """Put a field's constraints on the schema of its (non-null) value."""
    target = schema
    if "anyOf" in schema:
        target = schema["anyOf"][0]
    for key, keyword in _CONSTRAINT_KEYWORDS.items():
        if key in metadata:
            target[keyword] = metadata[key]
    return schema


def _object_schema(cls: type[Any], defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        schema = _constrain(_type_schema(hints[f.name], defs), f.metadata)
        if "$ref" in schema:
            schema = {"allOf": [schema]}
        if "doc" in f.metadata:
            schema["description"] = f.metadata["doc"]
        properties[f.name] = schema
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {
        "type": "object",
        "description": _doc(cls),
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a policy file."""
    defs: dict[str, Any] = {}
    root = _object_schema(Policy, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "RFR policy",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def render_policy_schema() -> str:
    """The schema as committed in ``policies/schema.json``."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_policy_schema())
