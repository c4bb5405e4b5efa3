"""Trending hashtags as clients read them: the ranking the stream workers store (streams/trending.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.storage.trending import TrendingRankings


@dataclass
class TrendingService:
    rankings: TrendingRankings

    async def top(self, window: str, limit: int) -> list[dict]:
        """The window's best `limit` tags, best first (one Redis read)."""
        return (await self.rankings.load(window))[:limit]
