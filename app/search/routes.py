"""HTTP routes of search: prefix matches of usernames and hashtags, best first."""

from __future__ import annotations

import re

from aiohttp import web

from app.context import current_user, service_key
from app.posts.text import MAX_TAG_LENGTH
from app.search.service import SearchService
from app.web import Field, Route, page_request, page_response, query_of

SEARCH = service_key(SearchService)
USER_QUERY = Field(str, required=True, pattern=re.compile(r"@?[A-Za-z0-9._]{1,30}"), code="invalid_query",
                   pattern_hint="must be 1 to 30 of A-Z, a-z, 0-9, '.' and '_' (a leading '@' is ignored)",
                   description="the start of a username, any case")
# hashtags are words of any script: a q no tag could start with ("no-dash", "#") finds nothing
HASHTAG_QUERY = Field(str, required=True, min_length=1, max_length=MAX_TAG_LENGTH + 1, opaque=True,
                      code="invalid_query", description="the start of a hashtag, any case, a leading '#' ignored")


async def search_users(request: web.Request) -> web.Response:
    await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[SEARCH].users(query_of(request)["q"], page.limit, page.cursor)
    return page_response(items, cursor)


async def search_hashtags(request: web.Request) -> web.Response:
    await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[SEARCH].hashtags(query_of(request)["q"], page.limit, page.cursor)
    return page_response(items, cursor)


ROUTES = [
    Route("GET", "/v1/search/users", search_users,
          "Users whose username starts with q (a leading '@' is ignored): the exact username first, then"
          " by follower count, most followed first",
          responses={200: "UserSearchResult"}, paged=True, tag="search",
          query={"q": USER_QUERY}),
    Route("GET", "/v1/search/hashtags", search_hashtags,
          "Hashtags starting with q (a leading '#' is ignored): the exact tag first, then by post count,"
          " most used first; tags with no posts are not listed",
          responses={200: "HashtagSearchResult"}, paged=True, tag="search",
          query={"q": HASHTAG_QUERY}),
]
