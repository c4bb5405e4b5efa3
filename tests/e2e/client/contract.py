"""Every answer the e2e tests get is held to /openapi.json: its status must be one the document lists for the
operation, and a JSON body must match the schema documented for that status. The document is the one the API
serves (app/openapi.py, built from the same route tables), so a test that provokes an undocumented status or
gets a body of another shape fails, whatever it asserts itself.

`checked_session` is an aiohttp ClientSession whose every response is checked as its headers arrive (the
`http` fixture is one); `check_response` is the check, for clients of other kinds. Answers to a path or method
the document does not name (404 and 405 of the router, another server's URLs) are not checked: no operation
describes them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import aiohttp
import jsonschema
import orjson

from app.main import all_routes
from app.openapi import build_document, openapi_path


class ContractViolation(AssertionError):
    """An answer the API's own document does not allow."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # as the document writes the path
    path: re.Pattern
    responses: dict


@cache
def document() -> dict:
    return build_document(all_routes())


@cache
def operations() -> tuple[Operation, ...]:
    """Each documented operation with a regular expression of its paths, in the router's order."""
    found = []
    for route in all_routes():
        template = openapi_path(route.path)
        pattern = re.sub(r"{(\w+)(?::([^}]*))?}", lambda m: f"(?:{m.group(2) or '[^/]+'})", route.path)
        responses = document()["paths"][template][route.method.lower()]["responses"]
        found.append(Operation(route.method, template, re.compile(pattern), responses))
    return tuple(found)


def operation_for(method: str, path: str) -> Operation | None:
    for operation in operations():
        if operation.method == method.upper() and operation.path.fullmatch(path):
            return operation
    return None


def check_response(method: str, path: str, status: int, content_type: str, body: bytes | None) -> None:
    """ContractViolation unless the document lists `status` for the operation `method path` and a JSON
    `body` matches the schema it documents for that status (body None: not read, only the status is checked)."""
    operation = operation_for(method, path)
    if operation is None:
        return
    documented = operation.responses.get(str(status))
    if documented is None:
        raise ContractViolation(f"{method} {path} answered {status}, which /openapi.json does not list for "
                                f"{operation.method} {operation.template} (it lists {', '.join(operation.responses)})"
                                f"; the body: {(body or b'')[:300]!r}")
    if body is None or content_type != "application/json":
        return
    schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        raise ContractViolation(f"{method} {path} answered {status} with JSON, which /openapi.json does not "
                                f"document for {operation.method} {operation.template}")
    errors = sorted(validator(orjson.dumps(schema)).iter_errors(orjson.loads(body)), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path)
        raise ContractViolation(f"{method} {path} answered {status} with a body that does not match its documented"
                                f" schema at '{where}': {errors[0].message}; the body: {body[:300]!r}")


@cache
def validator(schema_json: bytes) -> jsonschema.Draft202012Validator:
    """A validator of one response schema, its references resolved against the document's components
    (OpenAPI 3.0's `nullable` spelled as JSON Schema's null type)."""
    components = as_json_schema(copy.deepcopy(document()["components"]["schemas"]))
    schema = {"allOf": [as_json_schema(orjson.loads(schema_json))], "components": {"schemas": components}}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def as_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: as_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


async def _on_request_end(session, context, params: aiohttp.TraceRequestEndParams) -> None:
    response = params.response
    body = None
    if response.content_type == "application/json" and params.method != "HEAD":
        body = await response.read()  # kept by the response: the test reads it again
    check_response(params.method, params.url.path, response.status, response.content_type, body)


def contract_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig(trace_config_ctx_factory=lambda trace_request_ctx=None: SimpleNamespace())
    trace.on_request_end.append(_on_request_end)
    return trace


def checked_session(**kwargs) -> aiohttp.ClientSession:
    """An aiohttp ClientSession whose every answer from the API is held to the document (check_response)."""
    return aiohttp.ClientSession(trace_configs=[contract_trace()], **kwargs)
