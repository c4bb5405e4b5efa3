"""HTTP routes of likes."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.likes.service import LikeService
from app.users.service import UserService
from app.web import Route, json_response, page_request, page_response, post_id_in_path

LIKES = service_key(LikeService)
USERS = service_key(UserService)


async def like(request: web.Request) -> web.Response:
    me = await current_user(request)  # the service counts the user's rate limit in its one Redis script
    return json_response(await request.app[LIKES].like(me, post_id_in_path(request)))


async def unlike(request: web.Request) -> web.Response:
    me = await current_user(request)
    return json_response(await request.app[LIKES].unlike(me, post_id_in_path(request)))


async def list_likers(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    ids, cursor = await request.app[LIKES].likers(post_id_in_path(request), page.limit, page.cursor)
    return page_response(await request.app[USERS].users_json(ids, me), cursor)


ROUTES = [
    Route("PUT", "/v1/posts/{post_id}/like", like,
          "Like a post (idempotent); the reply's like_count already counts it",
          responses={200: "LikeState"}, errors={429: "Too many likes (see Retry-After)"}, tag="likes"),
    Route("DELETE", "/v1/posts/{post_id}/like", unlike,
          "Unlike a post (idempotent); the reply's like_count no longer counts it",
          responses={200: "LikeState"}, errors={429: "Too many likes (see Retry-After)"}, tag="likes"),
    Route("GET", "/v1/posts/{post_id}/likes", list_likers,
          "Who likes the post (newest likers bucket first, then by account id)",
          responses={200: "User"}, paged=True, tag="likes"),
]
