"""HTTP routes of likes."""

from __future__ import annotations

from aiohttp import web

from app.context import SERVICES, current_user, settings_of
from app.web import Route, json_response, page_request, page_response, post_id_in_path


async def like(request: web.Request) -> web.Response:
    me = await current_user(request)
    await request.app[SERVICES].limiter.hit("like", str(me), settings_of(request).like_rate_per_user)
    return json_response(await request.app[SERVICES].likes.like(me, post_id_in_path(request)))


async def unlike(request: web.Request) -> web.Response:
    me = await current_user(request)
    await request.app[SERVICES].limiter.hit("like", str(me), settings_of(request).like_rate_per_user)
    return json_response(await request.app[SERVICES].likes.unlike(me, post_id_in_path(request)))


async def list_likers(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    services = request.app[SERVICES]
    ids, cursor = await services.likes.likers(post_id_in_path(request), page.limit, page.cursor)
    return page_response(await services.users.users_json(ids, me), cursor)


ROUTES = [
    Route("PUT", "/v1/posts/{post_id}/like", like,
          "Like a post (idempotent); the reply's like_count already counts it",
          responses={200: "LikeState"}, tag="likes"),
    Route("DELETE", "/v1/posts/{post_id}/like", unlike,
          "Unlike a post (idempotent); the reply's like_count no longer counts it",
          responses={200: "LikeState"}, tag="likes"),
    Route("GET", "/v1/posts/{post_id}/likes", list_likers,
          "Who likes the post (newest likers bucket first, then by account id)",
          responses={200: "User"}, paged=True, tag="likes"),
]
