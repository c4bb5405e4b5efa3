"""HTTP routes of comments and replies."""

from __future__ import annotations

from aiohttp import web

from app.comments.service import CommentService
from app.context import LIMITER, current_user, service_key, settings_of
from app.errors import Conflict
from app.ids import parse_id
from app.web import (
    ID_PATTERN,
    Field,
    JsonBody,
    Route,
    comment_id_in_path,
    json_response,
    page_request,
    page_response,
    post_id_in_path,
    read_body,
)

MAX_COMMENT_LENGTH = 2_200  # the default of PHOTOS_MAX_COMMENT_LENGTH, which the service enforces

NEW_COMMENT = JsonBody("NewComment", {
    "text": Field(str, required=True, max_length=MAX_COMMENT_LENGTH, not_blank=True, code="empty_comment",
                  length_code="comment_too_long", description="stored without its surrounding white space"),
    "parent_id": Field(str, nullable=True, pattern=ID_PATTERN, pattern_hint="must be a comment's id",
                       description="reply to this comment (one level of nesting)"),
})

COMMENTS = service_key(CommentService)


async def create_comment(request: web.Request) -> web.Response:
    me = await current_user(request)
    post_id = post_id_in_path(request)
    settings = settings_of(request)
    body = await read_body(request)
    parent_id = None
    if body.get("parent_id") is not None:
        parent_id = parse_id(body["parent_id"])
        if parent_id is None:
            raise Conflict("parent_id names no comment", code="parent_not_found")
    await request.app[LIMITER].hit("comment", str(me), settings.comment_rate_per_user)
    comment = await request.app[COMMENTS].create(me, post_id, body["text"], parent_id)
    return json_response(comment, status=201)


async def list_comments(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[COMMENTS].top_level(post_id_in_path(request), page.limit, page.cursor, me)
    return page_response(items, cursor)


async def list_replies(request: web.Request) -> web.Response:
    await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[COMMENTS].replies(
        comment_id_in_path(request), page.limit, page.cursor
    )
    return page_response(items, cursor)


async def delete_comment(request: web.Request) -> web.Response:
    me = await current_user(request)
    await request.app[COMMENTS].delete(me, comment_id_in_path(request))
    return web.Response(status=204)


ROUTES = [
    Route("POST", "/v1/posts/{post_id}/comments", create_comment,
          "Comment on a post, or reply to a comment with parent_id (a reply to a reply joins its thread)",
          body=NEW_COMMENT, idempotency_key=True, idempotency_scope="comment", responses={201: "Comment"},
          errors={409: "parent_not_found, parent_on_other_post, parent_deleted: the post has no live comment with"
                       " the parent_id; idempotency_key_in_use",
                  429: "Too many comments (see Retry-After)"},
          tag="comments"),
    Route("GET", "/v1/posts/{post_id}/comments", list_comments,
          "A post's top-level comments, newest first (deleted ones only while they have replies)",
          responses={200: "Comment"}, paged=True, tag="comments"),
    Route("GET", "/v1/comments/{comment_id}/replies", list_replies, "A comment's replies, newest first",
          responses={200: "Comment"}, paged=True, tag="comments"),
    Route("DELETE", "/v1/comments/{comment_id}", delete_comment,
          "Delete a comment (its author or the post's author); one with replies stays listed as deleted",
          responses={204: "deleted"}, errors={403: "not_comment_author"}, tag="comments"),
]
