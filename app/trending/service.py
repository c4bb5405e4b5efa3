"""Trending hashtags as clients read them: the ranking the stream workers store (streams/trending.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import BadRequest
from app.storage.trending import TrendingRankings
from app.trending.scoring import WINDOWS


@dataclass
class TrendingService:
    rankings: TrendingRankings

    @staticmethod
    def window(name: str) -> str:
        """The window named (1h or 24h); BadRequest for another."""
        if name not in WINDOWS:
            raise BadRequest("window must be 1h or 24h", code="invalid_window")
        return name

    async def top(self, window: str, limit: int) -> list[dict]:
        """The window's best `limit` tags, best first (one Redis read)."""
        return (await self.rankings.load(window))[:limit]
