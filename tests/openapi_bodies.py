"""A minimal body for an operation, built from its OpenAPI schema: required properties only,
the first enum value, the smallest allowed number. For walkers over the whole document that
must send *some* valid-looking body to endpoints they know nothing about."""

from __future__ import annotations

from typing import Any


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def minimal(
    document: dict[str, Any], schema: dict[str, Any], *, string: str = "x", depth: int = 0
) -> Any:
    if depth > 12:  # recursive schemas (nested conditions): stop somewhere finite
        return {}
    schema = resolve(document, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if resolve(document, s).get("type") != "null"]
            return (
                minimal(document, options[0], string=string, depth=depth + 1) if options else None
            )
    if "allOf" in schema:
        return minimal(document, schema["allOf"][0], string=string, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: minimal(document, props.get(name, {}), string=string, depth=depth + 1)
            for name in schema.get("required", [])
        }
    if kind == "array":
        item = minimal(document, schema.get("items", {}), string=string, depth=depth + 1)
        return [item] * int(schema.get("minItems", 0))
    return _scalar(schema, kind, string)


def _scalar(schema: dict[str, Any], kind: str, string: str) -> Any:
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    formats = {"date-time": "2026-01-01T00:00:00Z", "date": "2000-01-01"}
    return formats.get(schema.get("format", ""), string)


def request_body(document: dict[str, Any], operation: dict[str, Any]) -> tuple[str, Any] | None:
    """(media type, body) for an operation that takes one; JSON when it is offered."""
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return None
    if "application/json" in content:
        schema = content["application/json"].get("schema", {})
        return "application/json", minimal(document, schema)
    media_type = next(iter(content))
    return media_type, ""
