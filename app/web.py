"""HTTP plumbing shared by every domain: JSON in and out, input validation, paging, routes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from app.errors import BadRequest, Invalid, TooLarge, UnsupportedMedia
from app.text import has_control_characters

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def page_response(items: list, next_cursor: str | None) -> web.Response:
    return json_response({"items": items, "next_cursor": next_cursor})


async def read_json(request: web.Request, max_bytes: int) -> dict:
    """The request's JSON object; 415 for another content type, 413 when larger than max_bytes."""
    if request.content_type != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"the JSON body may be at most {max_bytes} bytes")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise TooLarge(f"the JSON body may be at most {max_bytes} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    return body


@dataclass(frozen=True)
class Field:
    """One field of a JSON body: its type and the checks its value must pass."""

    kind: type
    required: bool = False
    min_length: int = 0
    max_length: int | None = None
    pattern: re.Pattern | None = None
    pattern_hint: str = ""
    nullable: bool = False


def validate(body: dict, spec: dict[str, Field]) -> dict:
    """The body's fields checked against spec; Invalid (422) naming the first bad field."""
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise Invalid(f"unknown field: {unknown[0]}", code="unknown_field")
    clean: dict[str, Any] = {}
    for name, rule in spec.items():
        if name not in body:
            if rule.required:
                raise Invalid(f"{name} is required", code="missing_field")
            continue
        value = body[name]
        if value is None and rule.nullable:
            clean[name] = None
            continue
        if type(value) is not rule.kind:  # bool is an int subclass: ask for the exact type
            raise Invalid(f"{name} must be a {_type_name(rule.kind)}", code="wrong_type")
        if isinstance(value, str):
            _check_text(name, value, rule)
        clean[name] = value
    return clean


def _check_text(name: str, value: str, rule: Field) -> None:
    if len(value) < rule.min_length:
        raise Invalid(f"{name} must be at least {rule.min_length} characters")
    if rule.max_length is not None and len(value) > rule.max_length:
        raise Invalid(f"{name} must be at most {rule.max_length} characters")
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        raise Invalid(f"{name} {rule.pattern_hint or 'has an invalid format'}")
    if has_control_characters(value):
        raise Invalid(f"{name} must not contain control characters", code="control_characters")


def _type_name(kind: type) -> str:
    return {str: "string", int: "integer", bool: "boolean", float: "number", list: "list", dict: "object"}[kind]


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


def page_request(request: web.Request) -> PageRequest:
    """`?limit=` (1..100, default 20) and `?cursor=` of a list request."""
    raw = request.query.get("limit")
    if raw is None:
        limit = DEFAULT_PAGE_SIZE
    elif raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE:
        limit = int(raw)
    else:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", code="invalid_limit")
    cursor = request.query.get("cursor") or None
    return PageRequest(limit=limit, cursor=cursor)


@dataclass(frozen=True)
class Route:
    """One endpoint: how aiohttp routes it and how /openapi.json describes it."""

    method: str
    path: str
    handler: Handler
    summary: str
    public: bool = False  # served without a bearer token
    request_body: dict | None = None  # OpenAPI schema of the body
    body_content_type: str = "application/json"
    idempotency_key: bool = False  # accepts the Idempotency-Key header
    responses: dict[int, str] = field(default_factory=dict)  # status -> component schema name or description
    paged: bool = False
    query: dict[str, dict] = field(default_factory=dict)  # further query parameters: name -> OpenAPI schema
    tag: str = ""
