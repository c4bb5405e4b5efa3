"""HTTP routes of hashtag pages."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.hashtags.service import HashtagService, normalise_tag
from app.web import Field, Route, json_response, page_request, page_response

HASHTAGS = service_key(HashtagService)
# any text: one no caption could yield (normalise_tag) is 404 invalid_hashtag
TAG = Field(str, opaque=True, description="a hashtag, with or without '#', any case")


async def get_hashtag(request: web.Request) -> web.Response:
    await current_user(request)
    return json_response(await request.app[HASHTAGS].get(normalise_tag(request.match_info["tag"])))


async def list_hashtag_posts(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    tag = normalise_tag(request.match_info["tag"])
    items, cursor = await request.app[HASHTAGS].list_posts(tag, me, page.limit, page.cursor)
    return page_response(items, cursor)


ROUTES = [
    Route("GET", "/v1/hashtags/{tag}", get_hashtag,
          "A hashtag (lower-cased, without '#') and its exact number of posts (0 when unused)",
          responses={200: "Hashtag"}, path_parameters={"tag": TAG}, tag="hashtags"),
    Route("GET", "/v1/hashtags/{tag}/posts", list_hashtag_posts,
          "The posts carrying a hashtag (lower-cased, without '#'), newest first",
          responses={200: "Post"}, paged=True, path_parameters={"tag": TAG}, tag="hashtags"),
]
