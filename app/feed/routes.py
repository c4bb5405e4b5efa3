"""HTTP route of the home feed."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.feed.service import ORDERS, RANKED, FeedService
from app.web import Field, Route, page_request, page_response, query_of

FEED = service_key(FeedService)


async def get_feed(request: web.Request) -> web.Response:
    me = await current_user(request)
    order = query_of(request)["order"]
    page_of = page_request(request)
    page = await request.app[FEED].read(me, order, page_of.limit, page_of.cursor)
    response = page_response(page.items, page.next_cursor)
    response.headers["X-Feed-Cache"] = page.cache
    if page.ranker is not None:
        response.headers["X-Feed-Ranker"] = page.ranker
    return response


ROUTES = [
    Route("GET", "/v1/feed", get_feed,
          "The home feed: posts of followed accounts, ranked (default) or newest first (?order=chronological)",
          responses={200: "Post"}, paged=True, tag="feed",
          query={"order": Field(str, choices=tuple(ORDERS), default=RANKED, code="invalid_order")},
          errors={400: "Malformed input: invalid_limit, invalid_cursor, invalid_order, cursor_expired"}),
]
