"""HTTP routes of posts and filters."""

from __future__ import annotations

import aiohttp
import aiohttp.http_exceptions
from aiohttp import BodyPartReader, web

from app.context import SERVICES, current_user, settings_of
from app.errors import BadRequest, Invalid, NotFound, TooLarge, UnsupportedMedia
from app.ids import parse_id
from app.media.filters import filter_catalogue
from app.posts.service import NewPost
from app.users.routes import user_id_in_path
from app.web import Route, json_response, page_request, page_response

TEXT_FIELDS = ("caption", "location", "filter")
MAX_TEXT_FIELD_BYTES = 64 * 1024  # far above any caption limit: longer text is a 413, not a 422
CHUNK = 256 * 1024


def post_id_in_path(request: web.Request) -> int:
    post_id = parse_id(request.match_info["post_id"])
    if post_id is None:
        raise NotFound("no such post", code="post_not_found")
    return post_id


async def read_new_post(request: web.Request) -> NewPost:
    """The multipart form of POST /v1/posts, read within the size limits."""
    image, fields = await read_upload(request, "image", TEXT_FIELDS)
    filter_name = fields.get("filter", "").strip().lower() or None
    return NewPost(image=image, caption=fields.get("caption", ""), location=fields.get("location", "").strip(),
                   filter_name=None if filter_name == "normal" else filter_name)


async def read_upload(request: web.Request, file_field: str, text_fields: tuple[str, ...]) -> tuple[bytes, dict]:
    """A multipart upload: exactly one file part named `file_field` and at most one of each text
    field, read within the size limits; anything else is refused."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMedia(f"send it as multipart/form-data with a `{file_field}` file part")
    max_bytes = settings_of(request).max_upload_bytes
    if request.content_length is not None and request.content_length > max_bytes + MAX_TEXT_FIELD_BYTES:
        raise TooLarge(f"an upload may be at most {max_bytes // (1024 * 1024)} MB")
    try:
        return await _read_form(request, max_bytes, file_field, text_fields)
    except (ValueError, aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError):
        # aiohttp's multipart parser reports a malformed body (no boundary, truncated part) this way
        raise BadRequest("the multipart body is malformed", code="malformed_multipart") from None


async def _read_form(request: web.Request, max_bytes: int, file_field: str, text_fields: tuple[str, ...]
                     ) -> tuple[bytes, dict]:
    data: bytes | None = None
    fields: dict[str, str] = {}
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            raise Invalid("nested multipart bodies are not accepted")
        if part.name == file_field:
            if data is not None:
                raise Invalid(f"send exactly one {file_field}", code="duplicate_field")
            data = await _read_limited(part, max_bytes, f"the {file_field}")
        elif part.name in text_fields:
            if part.name in fields:
                raise Invalid(f"{part.name} was sent twice", code="duplicate_field")
            raw = await _read_limited(part, MAX_TEXT_FIELD_BYTES, part.name)
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


async def _read_limited(part: BodyPartReader, max_bytes: int, what: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{what} may be at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def create_post(request: web.Request) -> web.Response:
    me = await current_user(request)
    new = await read_new_post(request)
    key = request.headers.get("Idempotency-Key")
    status, body = await request.app[SERVICES].posts.create(me, new, key)
    return json_response(body, status=status)


async def get_post(request: web.Request) -> web.Response:
    me = await current_user(request)
    return json_response(await request.app[SERVICES].posts.get(post_id_in_path(request), viewer_id=me))


async def delete_post(request: web.Request) -> web.Response:
    me = await current_user(request)
    await request.app[SERVICES].posts.delete(me, post_id_in_path(request))
    return web.Response(status=204)


async def list_user_posts(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[SERVICES].posts.list_by_user(
        user_id_in_path(request), me, page.limit, page.cursor
    )
    return page_response(items, cursor)


async def list_filters(request: web.Request) -> web.Response:
    return page_response(filter_catalogue(), None)


ROUTES = [
    Route("POST", "/v1/posts", create_post, "Publish a photo (multipart: image, caption?, location?, filter?)",
          request_body={"$ref": "#/components/schemas/NewPost"}, body_content_type="multipart/form-data",
          idempotency_key=True, responses={201: "Post"}, tag="posts"),
    Route("GET", "/v1/posts/{post_id}", get_post, "A post by id", responses={200: "Post"}, tag="posts"),
    Route("DELETE", "/v1/posts/{post_id}", delete_post, "Delete a post (its author only), media included",
          responses={204: "deleted"}, tag="posts"),
    Route("GET", "/v1/users/{user_id}/posts", list_user_posts, "A user's posts, newest first",
          responses={200: "Post"}, paged=True, tag="posts"),
    Route("GET", "/v1/filters", list_filters, "The filters offered", public=True,
          responses={200: "FilterList"}, tag="posts"),
]
