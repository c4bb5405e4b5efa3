"""Every input a route declares accepts exactly what its JSON Schema in /openapi.json allows, read as the
fuzzer reads it (schemathesis's ECMA reading of patterns): the validation and the document come from one
Field, and these values (edges of lengths, white space, controls, invisible characters, other scripts) show
the two readings agree."""

from __future__ import annotations

import pytest
from schemathesis.core.jsonschema.patterns import compile_ecma_pattern

from app.errors import Invalid
from app.main import all_routes
from app.web import JsonBody, Upload

TEXTS = ["", " ", "a", "ab", "abc", "ABC", "a.b_c", "@alice", "#tag", "0", "1234567890123456789",
         "12345678901234567890", "a b", "a\nb", "a\tb", "a\rb", "\n", " \n\t ",
         "x" * 30, "x" * 31, "x" * 64, "x" * 65, "x" * 100, "x" * 101,
         "x" * 2200, "x" * 2201, "bell\x07", "next\x85", "right\u202eleft", "zero\u200bwidth", "joiner\u200d",
         "\u3000", "\u3000x\u3000", "café", "ünï", "\U0001f468\u200d\U0001f469", "abc\n", "clarendon", "normal",
         "Clarendon", "1h", "24h", "ranked", "chronological"]


def declared_fields():
    for route in all_routes():
        where = f"{route.method} {route.path}"
        for name, rule in route.query_fields.items():
            yield f"{where} ?{name}", rule
        for name, rule in route.path_fields.items():
            yield f"{where} {{{name}}}", rule
        if isinstance(route.body, (JsonBody, Upload)):
            for name, rule in route.body.fields.items():
                yield f"{where} body.{name}", rule


def schema_allows(schema: dict, value: str) -> bool:
    if schema["type"] == "integer":
        return value.isascii() and value.isdigit() and schema["minimum"] <= int(value) <= schema["maximum"]
    if "enum" in schema:
        return value in schema["enum"]
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return False
    return "pattern" not in schema or compile_ecma_pattern(schema["pattern"]).search(value) is not None


def field_allows(rule, value: str) -> bool:
    try:
        rule.check("value", int(value) if rule.kind is int and value.isascii() and value.isdigit() else value)
    except Invalid:
        return False
    return True


@pytest.mark.parametrize(("where", "rule"), list(declared_fields()), ids=lambda x: x if isinstance(x, str) else "")
def test_a_declared_input_accepts_what_its_schema_allows_and_nothing_else(where, rule):
    schema = rule.schema()
    disagree = [value for value in TEXTS if schema_allows(schema, value) != field_allows(rule, value)]
    assert not disagree, f"{where}: {schema} and its validation disagree on {disagree!r}"
