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
from app.text import BIDI_CONTROLS, ZERO_WIDTH, has_control_characters, has_invisible_controls

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


# Characters text may not hold (app/text.py): C0 and C1 controls but newline and tab, and in text other people
# see, the bidirectional controls and zero-width characters too. Written as regular-expression classes, the one
# form both the validation below and the JSON Schema of /openapi.json (and so every client and fuzzer) read.
_CONTROLS = [(0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F)]
_INVISIBLE = [(ord(ch), ord(ch)) for ch in sorted(BIDI_CONTROLS | ZERO_WIDTH)]
_LINE_BREAKS = [(0x09, 0x0A)]  # tab and newline: what a one-line field refuses besides


def _class_body(ranges: list[tuple[int, int]]) -> str:
    return "".join(f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges)


def _white_space(refused: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The white space str.strip() removes (str.isspace()), but the refused characters, as ranges."""
    spaces = [code for code in range(0x3001) if chr(code).isspace()
              and not any(low <= code <= high for low, high in refused)]
    ranges: list[tuple[int, int]] = []
    for code in spaces:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


@dataclass(frozen=True)
class Field:
    """One input of a route, the one declaration of it: a JSON body field, a query or path parameter or a
    multipart text field. `check` validates a value with it and `schema` is its JSON Schema in /openapi.json,
    so what the API accepts and what its document promises cannot drift apart (tests/e2e/test_fuzz.py checks).

    A string is refused when it holds control characters (other than newline and tab), and, in text other
    people see (`shown`), bidirectional controls and zero-width characters; `opaque` strings (cursors, search
    terms, media keys) are the route's own business. A `pattern` replaces those rules, so it must not admit
    such characters itself. Query and path parameters arrive as text: an `int` one is written in ASCII digits.
    """

    kind: type
    required: bool = False
    min_length: int = 0
    max_length: int | None = None
    pattern: re.Pattern | None = None
    pattern_hint: str = ""
    nullable: bool = False
    shown: bool = True  # text people see (not a password): bidi controls and zero-width characters refused too
    opaque: bool = False  # no character rules: any text of the allowed length
    one_line: bool = False  # newline and tab refused too
    not_blank: bool = False  # must hold something other than white space (it is stored stripped)
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    description: str = ""
    code: str = ""  # the error code of a refused value (a body field's default tells what is wrong)
    length_code: str = ""  # the error code of a value too short or too long, when not `code`
    # a path parameter's conversion (an id to an int): None when no resource can have that name (404)
    convert: Callable[[str], Any] | None = None
    not_found: str = ""  # a refused path parameter's message (404 with `code`)

    def text_pattern(self) -> str | None:
        """The regular expression a string value must match in full, None when any text will do."""
        if self.kind is not str or self.choices:
            return None
        if self.pattern is not None:
            return self.pattern.pattern
        if self.opaque:
            return None
        refused = _CONTROLS + (_INVISIBLE if self.shown else []) + (_LINE_BREAKS if self.one_line else [])
        allowed = f"[^{_class_body(refused)}]"
        if self.not_blank:
            return f"{allowed}*[^{_class_body(refused + _white_space(refused))}]{allowed}*"
        return f"{allowed}*"

    def schema(self) -> dict:
        """The field's JSON Schema (OpenAPI 3.0 dialect)."""
        schema: dict[str, Any] = {"type": _SCHEMA_TYPES[self.kind]}
        if self.kind is str and self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        pattern = self.text_pattern()
        if pattern is not None:
            schema["pattern"] = f"^{pattern}$"
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.default is not None:
            schema["default"] = self.default
        if self.nullable:
            schema["nullable"] = True
        if self.description:
            schema["description"] = self.description
        return schema

    def check(self, name: str, value: Any) -> Any:
        """The value when it passes; Invalid naming the field and what is wrong otherwise."""
        if value is None and self.nullable:
            return None
        if type(value) is not self.kind:  # bool is an int subclass: ask for the exact type
            raise Invalid(f"{name} must be a {_type_name(self.kind)}", code="wrong_type")
        if isinstance(value, int) and not (
                (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)):
            raise Invalid(f"{name} must be a whole number from {self.minimum} to {self.maximum}")
        if isinstance(value, str):
            self._check_text(name, value)
        return value

    def _check_text(self, name: str, value: str) -> None:
        if self.choices:
            if value not in self.choices:
                raise Invalid(f"{name} must be one of: {', '.join(self.choices)}",
                              code=self.code or "validation_failed")
            return
        length_code = self.length_code or self.code or "validation_failed"
        if len(value) < self.min_length:
            raise Invalid(f"{name} must be at least {self.min_length} characters", code=length_code)
        if self.max_length is not None and len(value) > self.max_length:
            raise Invalid(f"{name} must be at most {self.max_length} characters", code=length_code)
        if self.pattern is not None:
            if not self.pattern.fullmatch(value):
                raise Invalid(f"{name} {self.pattern_hint or 'has an invalid format'}",
                              code=self.code or "validation_failed")
            return
        if self.opaque:
            return
        if has_control_characters(value):
            raise Invalid(f"{name} must not contain control characters", code="control_characters")
        if self.shown and has_invisible_controls(value):
            raise Invalid(f"{name} must not contain bidirectional controls or zero-width characters",
                          code="control_characters")
        if self.one_line and ("\n" in value or "\t" in value):
            raise Invalid(f"{name} must be one line", code="control_characters")
        if self.not_blank and not value.strip():
            raise Invalid(f"{name} must not be empty", code=self.code or "validation_failed")

    def from_text(self, name: str, raw: str) -> Any:
        """A query, path or form value (text on the wire) checked, as the kind it declares."""
        if self.kind is int:
            if not (raw.isascii() and raw.isdigit()):
                raise Invalid(f"{name} must be a whole number from {self.minimum} to {self.maximum}")
            return self.check(name, int(raw))
        value = self.check(name, raw)
        if self.convert is not None:
            value = self.convert(value)
            if value is None:
                raise Invalid(f"{name} names nothing")
        return value


_SCHEMA_TYPES = {str: "string", int: "integer", bool: "boolean"}


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
        clean[name] = rule.check(name, body[name])
    return clean


def object_schema(fields: dict[str, Field]) -> dict:
    """The JSON Schema of an object of these fields, no others."""
    schema: dict[str, Any] = {"type": "object"}
    required = [name for name, rule in fields.items() if rule.required]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    schema["properties"] = {name: rule.schema() for name, rule in fields.items()}
    return schema


def _type_name(kind: type) -> str:
    return {str: "string", int: "integer", bool: "boolean", float: "number", list: "list", dict: "object"}[kind]


@dataclass(frozen=True)
class JsonBody:
    """A route's JSON body: its fields, and its name among the document's schemas."""

    name: str
    fields: dict[str, Field]


@dataclass(frozen=True)
class Upload:
    """A route's multipart body: one file part and optional text parts, and its name among the schemas."""

    name: str
    file_field: str
    file_description: str
    fields: dict[str, Field] = field(default_factory=dict)
    media_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


LIMIT = Field(int, minimum=1, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE, code="invalid_limit",
              description="items per page")
CURSOR = Field(str, opaque=True, code="invalid_cursor",
               description="next_cursor of the page before; absent or empty: the first page")
PAGE_QUERY = {"limit": LIMIT, "cursor": CURSOR}

ID_PATTERN = re.compile(r"[0-9]{1,19}")


def id_parameter(not_found: str, code: str) -> Field:
    """A path parameter holding an id: 404 with `not_found` and `code` when it cannot be one of ours."""
    return Field(str, required=True, pattern=ID_PATTERN, convert=parse_id, not_found=not_found, code=code)


# the path parameters every route names alike; a route declares its others in `path`
ID_PARAMETERS = {
    "user_id": id_parameter("no such user", "user_not_found"),
    "post_id": id_parameter("no such post", "post_not_found"),
    "comment_id": id_parameter("no such comment", "comment_not_found"),
    "story_id": id_parameter("no such story, or it has expired", "story_not_found"),
}


def page_request(request: web.Request) -> PageRequest:
    """`?limit=` (1..100, default 20) and `?cursor=` (empty: the first page) of a list request."""
    query = query_of(request)
    return PageRequest(limit=query.get("limit", DEFAULT_PAGE_SIZE), cursor=query.get("cursor") or None)


def query_of(request: web.Request) -> dict[str, Any]:
    """The route's query parameters, checked by add_routes against its declaration (defaults filled in)."""
    return request[QUERY]


def path_of(request: web.Request) -> dict[str, Any]:
    """The route's path parameters, checked and converted by add_routes against its declaration."""
    return request[PATH]


def _checked_query(request: web.Request, spec: dict[str, Field]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, rule in spec.items():
        values = request.query.getall(name, [])
        if not values:
            if rule.required:
                raise BadRequest(f"{name} is required", code=rule.code or "missing_parameter")
            if rule.default is not None:
                clean[name] = rule.default
            continue
        if len(values) > 1:
            raise BadRequest(f"{name} was sent more than once", code=rule.code or "invalid_parameter")
        try:
            clean[name] = rule.from_text(name, values[0])
        except Invalid as exc:
            raise BadRequest(exc.message, code=rule.code or "invalid_parameter") from None
    return clean


def _checked_path(request: web.Request, spec: dict[str, Field]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, rule in spec.items():
        try:
            clean[name] = rule.from_text(name, request.match_info[name])
        except Invalid:
            raise NotFound(rule.not_found or "not found", code=rule.code or "not_found") from None
    return clean


async def read_body(request: web.Request) -> dict:
    """The route's JSON body (read_json), checked against its declared fields (validate)."""
    body = request[ROUTE].body
    assert isinstance(body, JsonBody), "read_body serves routes that declare a JsonBody"
    return validate(await read_json(request, settings_of(request).max_json_body_bytes), body.fields)


async def read_form(request: web.Request) -> tuple[bytes, dict]:
    """The route's multipart upload (read_upload): its file, and its declared text fields checked (422)."""
    upload = request[ROUTE].body
    assert isinstance(upload, Upload), "read_form serves routes that declare an Upload"
    data, fields = await read_upload(request, upload.file_field, tuple(upload.fields))
    return data, {name: upload.fields[name].from_text(name, value) for name, value in fields.items()}


def user_id_in_path(request: web.Request) -> int:
    return path_of(request)["user_id"]


def post_id_in_path(request: web.Request) -> int:
    return path_of(request)["post_id"]


def comment_id_in_path(request: web.Request) -> int:
    return path_of(request)["comment_id"]


def story_id_in_path(request: web.Request) -> int:
    return path_of(request)["story_id"]


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
    """One endpoint: how aiohttp routes it, what it takes, and how /openapi.json describes it.

    Its inputs are declared here once, as Fields: `body` (a JsonBody or an Upload), `query`, and `path` (the
    ids of ID_PARAMETERS need no declaration). add_routes checks the path and query parameters before the
    handler runs (after the bearer token, 401 first); the handler reads its body with read_body or read_form,
    which check it against the same declaration; app/openapi.py writes the document from it."""

    method: str
    path: str
    handler: Handler
    summary: str
    public: bool = False  # served without a bearer token
    # the handler authenticates the request itself (the notification stream: a ?ticket= or a bearer token)
    own_auth: bool = False
    body: JsonBody | Upload | None = None
    # accepts the Idempotency-Key header: add_routes runs it once per key (its handler reads its body first)
    idempotency_key: bool = False
    idempotency_scope: str = ""  # what its keys name ("post"); "<METHOD> <path>" when not given
    responses: dict[int, str] = field(default_factory=dict)  # status -> component schema name or description
    errors: dict[int, str] = field(default_factory=dict)  # error statuses of its own (403, 409, 422): when
    paged: bool = False  # takes `limit` and `cursor` (PAGE_QUERY) and answers a page of its 200 schema
    query: dict[str, Field] = field(default_factory=dict)  # further query parameters
    path_parameters: dict[str, Field] = field(default_factory=dict)  # path parameters other than ids
    tag: str = ""

    @property
    def scope(self) -> str:
        """The Idempotency-Key scope: a key reused for another route's request does not answer it."""
        return self.idempotency_scope or f"{self.method} {self.path}"

    @property
    def query_fields(self) -> dict[str, Field]:
        return (PAGE_QUERY | self.query) if self.paged else dict(self.query)

    @property
    def path_fields(self) -> dict[str, Field]:
        """Each parameter of the path, in order: its own declaration or the id's (KeyError for neither)."""
        names = _PATH_PARAMETER.findall(self.path)
        return {name: self.path_parameters.get(name) or ID_PARAMETERS[name] for name in names}


_PATH_PARAMETER = re.compile(r"{(\w+)(?::[^}]*)?}")  # aiohttp placeholders, with or without a pattern
ROUTE = web.RequestKey("route", Route)
QUERY = web.RequestKey("query", dict)
PATH = web.RequestKey("path", dict)


def add_routes(app: web.Application, routes: list[Route]) -> None:
    """Serve the routes, each through `checked` (a route marked `idempotency_key` wrapped by `run_once`)."""
    for route in routes:
        handler = run_once(route) if route.idempotency_key else route.handler
        app.router.add_route(route.method, route.path, checked(route, handler), name=route.handler.__name__)


def checked(route: Route, handler: Handler) -> Handler:
    """The handler, called once the request has a valid bearer token (unless the route is public or
    authenticates itself: 401) and its path (404) and query (400) parameters pass the route's declaration."""
    path_spec, query_spec = route.path_fields, route.query_fields

    @functools.wraps(handler)
    async def with_checked_input(request: web.Request) -> web.StreamResponse:
        if not (route.public or route.own_auth):
            await current_user(request)
        request[ROUTE] = route
        request[PATH] = _checked_path(request, path_spec)
        request[QUERY] = _checked_query(request, query_spec)
        return await handler(request)

    return with_checked_input


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
