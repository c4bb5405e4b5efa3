"""GET /v1/media/{key}: the local media store over HTTP, fit to be the origin of a CDN.

Keys are immutable, so the ETag is derived from the key alone (no file read) and every cache
may keep a copy for a year. Conditional requests (If-None-Match) and single byte ranges are
answered here; a multi-range or malformed Range header is ignored and the whole file sent, as
RFC 9110 section 14.2 allows. Files are streamed a chunk at a time, never read whole.

With the S3 store the API is not the media origin: URLs point at the bucket or its CDN, and
this route answers 404 for every key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from aiohttp import hdrs, web

from app.context import MEDIA_STORE
from app.errors import AppError, NotFound
from app.media.store import IMMUTABLE_CACHE_CONTROL, LocalMediaStore, MediaFile, is_public_key, media_type_for
from app.web import Field, Route

# 18 digits reach an exabyte; longer numbers would only feed int() a denial of service
KEY = Field(str, opaque=True, description="a media key, as the URLs of posts and stories name it")
_SINGLE_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.ASCII | re.IGNORECASE)


class RangeNotSatisfiable(AppError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        message = f"the range starts beyond the media's {size} bytes"
        super().__init__(message, headers={hdrs.CONTENT_RANGE: f"bytes */{size}"})


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def media_etag(key: str) -> str:
    """A strong ETag for the key's bytes: the key never names other bytes, so it identifies them."""
    return f'"{hashlib.sha256(key.encode()).hexdigest()[:32]}"'


def requested_range(header: str, size: int) -> ByteRange | None:
    """The one byte range the Range header asks for, None to send everything; RangeNotSatisfiable past the end."""
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None:  # several ranges, another unit, or garbage: ignored
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)  # `bytes=-n`: the last n bytes
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:  # an invalid range, not an unsatisfiable one: ignored
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


def _none_match(request: web.Request, etag: str) -> bool:
    """Whether If-None-Match names this representation (weak comparison, as RFC 9110 13.1.2 asks)."""
    tags = request.if_none_match or ()
    value = etag.strip('"')
    return any(tag.value in ("*", value) for tag in tags)


def _range_of(request: web.Request, etag: str, size: int) -> ByteRange | None:
    header = request.headers.get(hdrs.RANGE)
    if header is None:
        return None
    # If-Range must match strongly; a date (we send no Last-Modified) never does: send everything
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range is not None and if_range.strip() != etag:
        return None
    return requested_range(header, size)


async def serve_media(request: web.Request) -> web.StreamResponse:
    """The media's bytes, cacheable for a year; 304, 206 and 416 as the request's headers ask."""
    store = request.app[MEDIA_STORE]
    if not isinstance(store, LocalMediaStore):  # S3: media URLs never point here
        raise NotFound("media is served by the media CDN, not by this API", code="media_not_found")
    key = request.match_info["key"]
    media = await _open(store, key)
    try:
        return await _respond(request, key, media)
    finally:
        await media.close()


async def head_media(request: web.Request) -> web.StreamResponse:
    """What GET would answer, without the body (its own handler so OpenAPI operation ids stay unique)."""
    return await serve_media(request)


async def _open(store: LocalMediaStore, key: str) -> MediaFile:
    if not is_public_key(key):  # a ranking model, say: the same answer as a missing key
        raise NotFound("no such media", code="media_not_found")
    try:
        media = await store.open(key)
    except ValueError:  # not a key, or one leading through a symlink: nothing to serve either way
        media = None
    if media is None:
        raise NotFound("no such media", code="media_not_found")
    return media


async def _respond(request: web.Request, key: str, media: MediaFile) -> web.StreamResponse:
    etag = media_etag(key)
    headers = {
        hdrs.ETAG: etag,
        hdrs.CACHE_CONTROL: IMMUTABLE_CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",  # browsers must not guess a script or HTML out of an image
    }
    if _none_match(request, etag):
        return web.Response(status=304, headers=headers)
    byte_range = _range_of(request, etag, media.size)
    headers |= {hdrs.CONTENT_TYPE: media_type_for(key), hdrs.ACCEPT_RANGES: "bytes"}
    if byte_range is None:
        response = web.StreamResponse(status=200, headers=headers)
        start, length = 0, media.size
    else:
        headers[hdrs.CONTENT_RANGE] = f"bytes {byte_range.start}-{byte_range.end}/{media.size}"
        response = web.StreamResponse(status=206, headers=headers)
        start, length = byte_range.start, byte_range.length
    response.content_length = length
    await response.prepare(request)
    if request.method != hdrs.METH_HEAD:
        async for chunk in media.chunks(start, length):
            await response.write(chunk)  # waits while the client is slow: memory stays at one chunk
    await response.write_eof()
    return response


ROUTES = [
    Route(
        "GET",
        "/v1/media/{key:.+}",
        serve_media,
        "Media bytes from the local store (the CDN origin): ETag, immutable caching, byte ranges",
        public=True,
        responses={200: "The media", 206: "Part of the media", 304: "Not modified", 416: "Range not satisfiable"},
        path_parameters={"key": KEY},
        tag="media",
    ),
    Route(
        "HEAD",
        "/v1/media/{key:.+}",
        head_media,
        "The headers GET /v1/media/{key} would answer",
        public=True,
        responses={200: "The media's headers", 206: "Part of the media's headers", 304: "Not modified",
                   416: "Range not satisfiable"},
        path_parameters={"key": KEY},
        tag="media",
    ),
]
