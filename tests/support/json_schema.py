"""Hypothesis strategies from the JSON Schema a pydantic model describes.

Covers what pydantic writes for the Clever wire models: `$ref` into `$defs`, `anyOf`,
`type` (string, integer, number, boolean, null, array, object), `properties`, `required`,
`items`, `minLength` and `additionalProperties: true` (extra keys with any JSON value are
mixed in). Text is any Unicode text Python can encode (NUL included), as a hostile
district's may be.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

Strategy = st.SearchStrategy[Any]

ANY_JSON: Strategy = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def from_schema(schema: dict[str, Any]) -> Strategy:
    """Values valid under `schema` (a model's `model_json_schema()`)."""
    definitions: dict[str, Any] = schema.get("$defs", {})
    built: dict[str, Strategy] = {}

    def build(node: dict[str, Any]) -> Strategy:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in built:
                built[name] = st.deferred(lambda: build(definitions[name]))
            return built[name]
        if "anyOf" in node:
            return st.one_of([build(option) for option in node["anyOf"]])
        kind = node.get("type")
        if kind == "string":
            return st.text(min_size=node.get("minLength", 0), max_size=30)
        if kind == "integer":
            return st.integers()
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            return st.lists(build(node.get("items", {})), max_size=3)
        if kind == "object" or "properties" in node:
            return _object(node, build)
        return ANY_JSON

    return build(schema)


def _object(node: dict[str, Any], build: Any) -> Strategy:
    properties: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", ()))
    fields = {name: build(value) for name, value in properties.items()}
    extra = (
        st.dictionaries(
            st.text(max_size=8).filter(lambda k: k not in properties), ANY_JSON, max_size=2
        )
        if node.get("additionalProperties") is True
        else st.just({})
    )
    return st.fixed_dictionaries(
        {name: fields[name] for name in required},
        optional={name: fields[name] for name in properties if name not in required},
    ).flatmap(lambda known: extra.map(lambda more: {**more, **known}))
