"""HTTP routes of stories."""

from __future__ import annotations

from aiohttp import web

from app.context import LIMITER, current_user, service_key, settings_of
from app.errors import UnsupportedMedia
from app.stories.service import StoryService
from app.users.service import UserService
from app.web import (
    Route,
    Upload,
    charge_upload,
    json_response,
    page_request,
    page_response,
    read_form,
    story_id_in_path,
    user_id_in_path,
)

# ISO base media files whose brand says "still image"; every other ftyp box is a video container
IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}

STORIES = service_key(StoryService)
NEW_STORY = Upload("NewStory", "media", "a JPEG, PNG or WebP photo, at most 20 MB (video: 415)")
USERS = service_key(UserService)


def looks_like_video(data: bytes) -> bool:
    """Whether the upload is a video container (MP4/MOV/3GP, WebM/Matroska, AVI, MPEG) by its magic bytes."""
    if data[4:8] == b"ftyp":
        return data[8:12] not in IMAGE_BRANDS
    return (
        data.startswith(b"\x1a\x45\xdf\xa3")  # EBML: WebM, Matroska
        or (data.startswith(b"RIFF") and data[8:12] == b"AVI ")
        or data.startswith(b"\x00\x00\x01\xba")  # MPEG program stream
        or data[4:8] in (b"moov", b"mdat", b"wide", b"free")  # QuickTime without an ftyp box
    )


async def create_story(request: web.Request) -> web.Response:
    me = await current_user(request)
    media, _ = await read_form(request)  # a retry of an answered Idempotency-Key ends here
    if looks_like_video(media):
        raise UnsupportedMedia("video stories are not supported yet; upload a JPEG, PNG or WebP photo",
                               code="video_not_supported")
    await request.app[LIMITER].hit("story", str(me), settings_of(request).story_rate_per_user)
    await charge_upload(request, me, media)  # 429 before the image pool is asked
    return json_response(await request.app[STORIES].create(me, media), status=201)


async def tray(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[STORIES].tray(me, page.limit, page.cursor)
    return page_response(items, cursor)


async def list_user_stories(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[STORIES].list_by_user(
        user_id_in_path(request), me, page.limit, page.cursor
    )
    return page_response(items, cursor)


async def view_story(request: web.Request) -> web.Response:
    me = await current_user(request)
    await request.app[LIMITER].hit("story-view", str(me), settings_of(request).story_view_rate_per_user)
    await request.app[STORIES].view(me, story_id_in_path(request))
    return web.Response(status=204)


async def list_viewers(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    ids, cursor = await request.app[STORIES].viewers(me, story_id_in_path(request), page.limit, page.cursor)
    return page_response(await request.app[USERS].users_json(ids, me), cursor)


ROUTES = [
    Route("POST", "/v1/stories", create_story,
          "Post a photo story (multipart: media); it expires after story_ttl_s (24 h). Video: 415",
          body=NEW_STORY, idempotency_key=True, idempotency_scope="story", responses={201: "Story"},
          errors={409: "too_many_stories: the most live stories allowed; idempotency_key_in_use",
                  415: "Not a JPEG, PNG or WebP photo (video_not_supported)",
                  422: "Invalid input: a field, invalid_image (empty, corrupt, too small)",
                  429: "Too many stories or uploads (see Retry-After)"},
          tag="stories"),
    Route("GET", "/v1/stories/tray", tray,
          "Followed accounts with live stories: unseen first, then by affinity, then the newest story",
          responses={200: "TrayEntry"}, paged=True, tag="stories"),
    Route("GET", "/v1/users/{user_id}/stories", list_user_stories,
          "A user's live stories, oldest first, with seen_by_me (and view_count for the author)",
          responses={200: "Story"}, paged=True, tag="stories"),
    Route("PUT", "/v1/stories/{story_id}/view", view_story,
          "Mark a story viewed (idempotent; the author's own views are not counted)",
          responses={204: "viewed"}, errors={429: "Too many views (see Retry-After)"}, tag="stories"),
    Route("GET", "/v1/stories/{story_id}/viewers", list_viewers,
          "Who viewed the story (its author only), newest viewers bucket first, then by account id",
          responses={200: "User"}, paged=True, errors={403: "not_story_author"}, tag="stories"),
]
