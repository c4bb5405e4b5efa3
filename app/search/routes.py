"""HTTP routes of search: prefix matches of usernames and hashtags, best first."""

from __future__ import annotations

from aiohttp import web

from app.context import current_user, service_key
from app.search.service import SearchService
from app.web import Route, page_request, page_response

SEARCH = service_key(SearchService)


async def search_users(request: web.Request) -> web.Response:
    await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[SEARCH].users(request.query.get("q"), page.limit, page.cursor)
    return page_response(items, cursor)


async def search_hashtags(request: web.Request) -> web.Response:
    await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[SEARCH].hashtags(request.query.get("q"), page.limit, page.cursor)
    return page_response(items, cursor)


ROUTES = [
    Route("GET", "/v1/search/users", search_users,
          "Users whose username starts with q (a leading '@' is ignored): the exact username first, then"
          " by follower count, most followed first",
          responses={200: "UserSearchResult"}, paged=True, tag="search",
          query={"q": {"type": "string", "pattern": "^@?[A-Za-z0-9._]{1,30}$"}}),
    Route("GET", "/v1/search/hashtags", search_hashtags,
          "Hashtags starting with q (a leading '#' is ignored): the exact tag first, then by post count,"
          " most used first; tags with no posts are not listed",
          responses={200: "HashtagSearchResult"}, paged=True, tag="search",
          query={"q": {"type": "string", "minLength": 1, "maxLength": 101}}),
]
