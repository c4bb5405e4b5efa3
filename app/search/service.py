"""Search requests: the query checked, one index read, results and an opaque cursor."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from app.cursors import CursorCodec
from app.errors import BadRequest, Unavailable
from app.redis_breaker import RedisBreaker
from app.search.query import HASHTAGS, USERS, Kind, Match, Page, hashtag_prefix, normalise_user_query
from app.storage.search_index import SearchIndex

_MAX_MEMBER = 200  # a rank, ':' and the longest name, with room to spare


def user_result(match: Match) -> dict:
    doc = orjson.loads(match.payload) if match.payload else {}
    return {"id": doc.get("id", ""), "username": match.name, "display_name": doc.get("display_name", ""),
            "follower_count": match.popularity}


def hashtag_result(match: Match) -> dict:
    return {"tag": match.name, "post_count": match.popularity}


@dataclass
class SearchService:
    index: SearchIndex
    cursors: CursorCodec
    breaker: RedisBreaker

    async def users(self, raw_q: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        return await self._search(USERS, normalise_user_query(raw_q), limit, cursor, user_result)

    async def hashtags(self, raw_q: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        q = hashtag_prefix(raw_q or "")
        if q is None:  # "no-dash", "#": no tag starts so
            return [], None
        return await self._search(HASHTAGS, q, limit, cursor, hashtag_result)

    async def _search(self, kind: Kind, q: str, limit: int, cursor: str | None, shape) -> tuple[list, str | None]:
        cursor_kind = f"search-{kind.name}:{q}"  # a cursor only continues the query it was issued for
        position = self.cursors.decode(cursor_kind, cursor)
        after = None
        if position is not None:
            after = position.get("m")
            if not isinstance(after, str) or len(after) > _MAX_MEMBER:
                raise BadRequest("the cursor is not valid for this list", code="invalid_cursor")
        page: Page | None = await self.breaker.call(
            "search", lambda: self.index.search(kind, q, limit, after), fallback=None)
        if page is None:
            raise Unavailable("search is unavailable (its index in Redis cannot be reached); retry shortly")
        next_cursor = None if page.after is None else self.cursors.encode(cursor_kind, {"m": page.after})
        return [shape(m) for m in page.matches], next_cursor
