"""HTTP routes of trending hashtags: one Redis read of the ranking the stream workers store."""

from __future__ import annotations

from aiohttp import web

from app.context import REDIS, current_user, settings_of
from app.errors import BadRequest
from app.storage.trending import TrendingRankings
from app.trending.scoring import WINDOWS
from app.web import Route, json_response, page_request


async def trending_hashtags(request: web.Request) -> web.Response:
    await current_user(request)
    window = request.query.get("window", "1h")
    if window not in WINDOWS:
        raise BadRequest("window must be 1h or 24h", code="invalid_window")
    limit = page_request(request).limit
    settings = settings_of(request)
    rankings = TrendingRankings(request.app[REDIS], settings.cassandra_keyspace, settings.trending_ttl_days * 86_400)
    return json_response({"window": window, "items": (await rankings.load(window))[:limit]})


ROUTES = [
    Route("GET", "/v1/trending/hashtags", trending_hashtags,
          "Trending hashtags of the window, ranked by score (distinct authors against the tag's usual rate)",
          responses={200: "TrendingHashtags"}, tag="trending",
          query={"window": {"type": "string", "enum": ["1h", "24h"], "default": "1h"},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}),
]
