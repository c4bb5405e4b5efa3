"""HTTP routes of posts and filters."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.media.filters import FILTERS, filter_catalogue
from app.posts.service import NewPost, PostService
from app.web import (
    Field,
    Route,
    Upload,
    charge_upload,
    json_response,
    page_request,
    page_response,
    post_id_in_path,
    read_form,
    user_id_in_path,
)

# the defaults of PHOTOS_MAX_CAPTION_LENGTH and PHOTOS_MAX_LOCATION_LENGTH, which the service enforces
MAX_CAPTION_LENGTH = 2_200
MAX_LOCATION_LENGTH = 100
NO_FILTER = "normal"

NEW_POST = Upload("NewPost", "image", "JPEG, PNG or WebP, at most 20 MB", {
    "caption": Field(str, max_length=MAX_CAPTION_LENGTH, length_code="caption_too_long",
                     description="#hashtags (at most 30) and @mentions in it are linked"),
    "location": Field(str, max_length=MAX_LOCATION_LENGTH, one_line=True,
                      description="stored without its surrounding white space"),
    "filter": Field(str, choices=(NO_FILTER, *FILTERS), code="unknown_filter",
                    description="a name from GET /v1/filters, or normal (none)"),
})

POSTS = service_key(PostService)


async def read_new_post(request: web.Request) -> NewPost:
    """The multipart form of POST /v1/posts, read within the size limits."""
    image, fields = await read_form(request)
    filter_name = fields.get("filter", NO_FILTER)
    return NewPost(image=image, caption=fields.get("caption", ""), location=fields.get("location", "").strip(),
                   filter_name=None if filter_name == NO_FILTER else filter_name)


async def create_post(request: web.Request) -> web.Response:
    me = await current_user(request)
    new = await read_new_post(request)
    await charge_upload(request, me, new.image)  # 429 before the image pool is asked
    return json_response(await request.app[POSTS].create(me, new), status=201)


async def get_post(request: web.Request) -> web.Response:
    me = await current_user(request)
    return json_response(await request.app[POSTS].get(post_id_in_path(request), viewer_id=me))


async def delete_post(request: web.Request) -> web.Response:
    me = await current_user(request)
    await request.app[POSTS].delete(me, post_id_in_path(request))
    return web.Response(status=204)


async def list_user_posts(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[POSTS].list_by_user(
        user_id_in_path(request), me, page.limit, page.cursor
    )
    return page_response(items, cursor)


async def list_filters(request: web.Request) -> web.Response:
    return page_response(filter_catalogue(), None)


ROUTES = [
    Route("POST", "/v1/posts", create_post, "Publish a photo (multipart: image, caption?, location?, filter?)",
          body=NEW_POST, idempotency_key=True, idempotency_scope="post", responses={201: "Post"},
          errors={415: "Not a JPEG, PNG or WebP image", 422: "Invalid input: a field, too_many_hashtags,"
                  " invalid_image (empty, corrupt, too small)", 429: "Too many uploads (see Retry-After)"},
          tag="posts"),
    Route("GET", "/v1/posts/{post_id}", get_post, "A post by id", responses={200: "Post"}, tag="posts"),
    Route("DELETE", "/v1/posts/{post_id}", delete_post, "Delete a post (its author only), media included",
          responses={204: "deleted"}, errors={403: "not_post_author"}, tag="posts"),
    Route("GET", "/v1/users/{user_id}/posts", list_user_posts, "A user's posts, newest first",
          responses={200: "Post"}, paged=True, tag="posts"),
    Route("GET", "/v1/filters", list_filters, "The filters offered", public=True,
          responses={200: "FilterList"}, tag="posts"),
]
