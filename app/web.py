"""HTTP plumbing shared by every domain's routes: JSON in and out, input validation, ids in paths, paging,
multipart uploads, the Route that describes an endpoint, and `add_routes`, which serves a route table
(running each route marked `idempotency_key` at most once per Idempotency-Key). Route modules use this;
services never do.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiohttp.http_exceptions
import orjson
from aiohttp import BodyPartReader, web

from app.context import IDEMPOTENCY, current_user, limit_user_and_address, settings_of
from app.errors import BadRequest, Invalid, NotFound, RequestTimeout, TooLarge, UnsupportedMedia
from app.idempotency import Claim, Stored, check_key, fingerprint
from app.ids import parse_id
from app.media.processing import header_pixels
from app.text import has_control_characters, has_invisible_controls

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_TEXT_FIELD_BYTES = 64 * 1024  # of an upload's text part: far above any caption limit (longer: 413, not 422)
UPLOAD_CHUNK = 256 * 1024
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
BODY_READ = web.RequestKey("body_read", object)  # run_once's claim, called by the body readers with what they read


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def page_response(items: list, next_cursor: str | None) -> web.Response:
    return json_response({"items": items, "next_cursor": next_cursor})


class BodyClock:
    """The time limits of reading one request's body: each read waits at most `body_read_idle_timeout_s`
    for bytes, and the whole body must be in within `body_read_deadline_s`; past either, RequestTimeout
    (408, connection closed). A client that trickles or stalls a body then holds its connection for a bounded
    time, while a large upload on a slow link goes on as long as it keeps sending."""

    def __init__(self, request: web.Request) -> None:
        settings = settings_of(request)
        self._loop = asyncio.get_running_loop()
        self._idle_s = settings.body_read_idle_timeout_s
        self._deadline = self._loop.time() + settings.body_read_deadline_s

    async def read(self, reading: Awaitable[Any]) -> Any:
        """The result of one read of the body, within the limits."""
        left = self._deadline - self._loop.time()
        try:
            return await asyncio.wait_for(reading, min(self._idle_s, max(left, 0.0)))
        except TimeoutError:
            what = "stopped arriving" if left > self._idle_s else "took too long"
            raise RequestTimeout(f"the request body {what}; send it again") from None


async def read_json(request: web.Request, max_bytes: int) -> dict:
    """The request's JSON object; 415 for another content type, 413 when larger than max_bytes, 408 when the
    client stops sending it (BodyClock)."""
    if request.content_type != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"the JSON body may be at most {max_bytes} bytes")
    clock, raw = BodyClock(request), b""
    while len(raw) <= max_bytes:  # a read returns what has arrived: a body sent in pieces takes several
        chunk = await clock.read(request.content.read(max_bytes + 1 - len(raw)))
        if not chunk:
            break
        raw += chunk
    if len(raw) > max_bytes:
        raise TooLarge(f"the JSON body may be at most {max_bytes} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    claim = request.get(BODY_READ)
    if claim is not None:  # an Idempotency-Key request: its fingerprint
        await claim(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
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
    shown: bool = True  # text people see (not a password): bidi controls and zero-width characters refused too


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
    if rule.shown and has_invisible_controls(value):
        raise Invalid(f"{name} must not contain bidirectional controls or zero-width characters",
                      code="control_characters")


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


def id_in_path(request: web.Request, name: str, not_found: str, code: str) -> int:
    """The id in the path's `{name}`; NotFound with `not_found` and `code` when it cannot be one of ours."""
    value = parse_id(request.match_info[name])
    if value is None:
        raise NotFound(not_found, code=code)
    return value


def user_id_in_path(request: web.Request) -> int:
    return id_in_path(request, "user_id", "no such user", "user_not_found")


def post_id_in_path(request: web.Request) -> int:
    return id_in_path(request, "post_id", "no such post", "post_not_found")


def comment_id_in_path(request: web.Request) -> int:
    return id_in_path(request, "comment_id", "no such comment", "comment_not_found")


def story_id_in_path(request: web.Request) -> int:
    return id_in_path(request, "story_id", "no such story, or it has expired", "story_not_found")


async def read_upload(request: web.Request, file_field: str, text_fields: tuple[str, ...]) -> tuple[bytes, dict]:
    """A multipart upload: exactly one file part named `file_field` and at most one of each text
    field, read within the size and time limits (BodyClock); anything else is refused."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMedia(f"send it as multipart/form-data with a `{file_field}` file part")
    max_bytes = settings_of(request).max_upload_bytes
    if request.content_length is not None and request.content_length > max_bytes + MAX_TEXT_FIELD_BYTES:
        raise TooLarge(f"an upload may be at most {max_bytes // (1024 * 1024)} MB")
    try:
        data, fields = await _read_form(request, max_bytes, file_field, text_fields)
    except (ValueError, aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError):
        # aiohttp's multipart parser reports a malformed body (no boundary, truncated part) this way
        raise BadRequest("the multipart body is malformed", code="malformed_multipart") from None
    claim = request.get(BODY_READ)
    if claim is not None:  # an Idempotency-Key request: its fingerprint
        # the parts, not the raw body: a client's retry may frame the same form with another boundary;
        # the file (megabytes) is hashed in a thread, off the event loop (hashlib releases the GIL)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        form = {"file": [file_field, digest], "fields": fields}
        await claim(orjson.dumps(form, option=orjson.OPT_SORT_KEYS))
    return data, fields


async def _read_form(request: web.Request, max_bytes: int, file_field: str, text_fields: tuple[str, ...]
                     ) -> tuple[bytes, dict]:
    data: bytes | None = None
    fields: dict[str, str] = {}
    clock = BodyClock(request)
    reader = await request.multipart()
    while (part := await clock.read(reader.next())) is not None:
        if not isinstance(part, BodyPartReader):
            raise Invalid("nested multipart bodies are not accepted")
        if part.name == file_field:
            if data is not None:
                raise Invalid(f"send exactly one {file_field}", code="duplicate_field")
            data = await _read_limited(part, max_bytes, f"the {file_field}", clock)
        elif part.name in text_fields:
            if part.name in fields:
                raise Invalid(f"{part.name} was sent twice", code="duplicate_field")
            raw = await _read_limited(part, MAX_TEXT_FIELD_BYTES, part.name, clock)
            try:
                fields[part.name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid(f"{part.name} must be UTF-8 text") from None
        else:
            raise Invalid(f"unknown field: {part.name}", code="unknown_field")
    if not data:
        raise Invalid(f"an `{file_field}` file part is required" if file_field[0] in "aeiou"
                      else f"a `{file_field}` file part is required", code="missing_field")
    return data, fields


async def charge_upload(request: web.Request, user_id: int, image: bytes) -> None:
    """Charge an upload the pixels decoding it would produce (width x height from its header; nothing is
    decoded here) to the user's and the client address's budgets: RateLimited (429) when either is spent,
    before the image pool is asked. Charged by request, a few huge images (a 7000x7000 PNG costs ~1.4 s of a
    worker) would keep the pool busy within a limit made for phone photos. An image the pool refuses from
    its header alone (not an image, too large) costs nothing."""
    settings = settings_of(request)
    pixels = header_pixels(image, settings.max_image_pixels)
    await limit_user_and_address(request, "upload-pixels", user_id, settings.upload_pixels_per_user,
                                 settings.upload_pixels_per_address, cost=pixels)


async def _read_limited(part: BodyPartReader, max_bytes: int, what: str, clock: BodyClock) -> bytes:
    chunks, size = [], 0
    while chunk := await clock.read(part.read_chunk(UPLOAD_CHUNK)):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{what} may be at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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
    # accepts the Idempotency-Key header: add_routes runs it once per key (its handler reads its body first)
    idempotency_key: bool = False
    idempotency_scope: str = ""  # what its keys name ("post"); "<METHOD> <path>" when not given
    responses: dict[int, str] = field(default_factory=dict)  # status -> component schema name or description
    paged: bool = False
    query: dict[str, dict] = field(default_factory=dict)  # further query parameters: name -> OpenAPI schema
    tag: str = ""

    @property
    def scope(self) -> str:
        """The Idempotency-Key scope: a key reused for another route's request does not answer it."""
        return self.idempotency_scope or f"{self.method} {self.path}"


def add_routes(app: web.Application, routes: list[Route]) -> None:
    """Serve the routes; a route marked `idempotency_key` is wrapped by `run_once`."""
    for route in routes:
        handler = run_once(route) if route.idempotency_key else route.handler
        app.router.add_route(route.method, route.path, handler, name=route.handler.__name__)


class _Replayed(Exception):  # not an error: how a replay leaves the handler it interrupts
    """Raised out of the handler's body reader when the key already answered this request."""

    def __init__(self, stored: Stored) -> None:
        super().__init__()
        self.stored = stored


def run_once(route: Route) -> Handler:
    """The route's handler, run at most once per (user, scope, Idempotency-Key) by the IdempotencyStore
    (app/idempotency.py): a retry gets the first response's status and JSON body again, and creates nothing.

    The key is claimed when the handler has read its body (`read_json`, `read_upload`), which is when the
    request's fingerprint is known, and before the handler acts on it: so the handler must read its body
    with one of them before it changes anything, answer with a JSON response (json_response) or raise, and
    let exceptions from the body reader pass (a replay leaves the handler that way)."""
    handler, scope = route.handler, route.scope

    @functools.wraps(handler)
    async def once(request: web.Request) -> web.StreamResponse:
        me = await current_user(request)  # 401 before anything else, as in every handler
        key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
        if key is None:
            return await handler(request)
        check_key(key)
        store = request.app[IDEMPOTENCY]
        held: list[Claim] = []

        async def claim(canonical: bytes) -> None:
            if held:  # a handler that reads a second body part is still one request
                return
            outcome = await store.claim(me, f"{scope}:{key}", fingerprint(request.method, request.path, canonical))
            if isinstance(outcome, Stored):
                raise _Replayed(outcome)
            held.append(outcome)

        request[BODY_READ] = claim
        try:
            response = await handler(request)
        except _Replayed as replayed:
            return json_response(replayed.stored.body, status=replayed.stored.status)
        except BaseException:
            if held:
                await held[0].release()
            raise
        if not held:  # a programming error: the route reads no body, so it ran unguarded
            raise RuntimeError(f"{route.method} {route.path} takes an Idempotency-Key but read no body")
        await held[0].finish(response.status, orjson.loads(response.body))
        return response

    return once
