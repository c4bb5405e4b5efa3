"""HTTP routes of trending hashtags: one Redis read of the ranking the stream workers store."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.trending.service import TrendingService
from app.web import Route, json_response, page_request

TRENDING = service_key(TrendingService)


async def trending_hashtags(request: web.Request) -> web.Response:
    await current_user(request)
    trending = request.app[TRENDING]
    window = trending.window(request.query.get("window", "1h"))
    items = await trending.top(window, page_request(request).limit)
    return json_response({"window": window, "items": items})


ROUTES = [
    Route("GET", "/v1/trending/hashtags", trending_hashtags,
          "Trending hashtags of the window, ranked by score (distinct authors against the tag's usual rate)",
          responses={200: "TrendingHashtags"}, tag="trending",
          query={"window": {"type": "string", "enum": ["1h", "24h"], "default": "1h"},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}),
]
