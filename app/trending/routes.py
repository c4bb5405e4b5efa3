"""HTTP routes of trending hashtags: one Redis read of the ranking the stream workers store."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.trending.scoring import WINDOWS
from app.trending.service import TrendingService
from app.web import LIMIT, Field, Route, json_response, page_request, query_of

TRENDING = service_key(TrendingService)


async def trending_hashtags(request: web.Request) -> web.Response:
    await current_user(request)
    trending = request.app[TRENDING]
    window = query_of(request)["window"]
    items = await trending.top(window, page_request(request).limit)
    return json_response({"window": window, "items": items})


ROUTES = [
    Route("GET", "/v1/trending/hashtags", trending_hashtags,
          "Trending hashtags of the window, ranked by score (distinct authors against the tag's usual rate)",
          responses={200: "TrendingHashtags"}, tag="trending",
          query={"window": Field(str, choices=tuple(WINDOWS), default="1h", code="invalid_window"),
                 "limit": LIMIT}),
]
