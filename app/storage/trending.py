"""Trending state in Redis: per-(tag, slot) sets of `author:post`, merged whatever worker wrote them.

Keys (namespaced by keyspace, all expiring after `ttl_s`, so every key is bounded in time and a
slot's set is bounded by the posts made in 5 minutes):

- `{ns}:trend:cell:{tag}:{slot}` -> {"author:post"}: SADD on PostCreated, SREM on PostDeleted;
  both idempotent, so redelivery changes nothing and several workers can write the same tag.
- `{ns}:trend:tags:{slot}` -> {tag}: the tags seen in a slot, to find the candidates of a window.
"""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from app.trending.scoring import TagSlots


class TrendingCells:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s

    def _cell(self, tag: str, slot: int) -> str:
        return f"{self._ns}:trend:cell:{tag}:{slot}"

    def _tags(self, slot: int) -> str:
        return f"{self._ns}:trend:tags:{slot}"

    async def apply(self, added: list[tuple[str, int, int, int]], removed: list[tuple[str, int, int, int]]) -> None:
        """Each item is (tag, slot, author, post); one round trip for the whole batch."""
        pipe = self._redis.pipeline(transaction=False)
        for tag, slot, author, post in added:
            pipe.sadd(self._cell(tag, slot), f"{author}:{post}")
            pipe.expire(self._cell(tag, slot), self._ttl_s)
            pipe.sadd(self._tags(slot), tag)
            pipe.expire(self._tags(slot), self._ttl_s)
        for tag, slot, author, post in removed:
            pipe.srem(self._cell(tag, slot), f"{author}:{post}")
        await pipe.execute()

    async def load(self, now_slot: int, window_slots: int, baseline_slots: int) -> TagSlots:
        """The cells of every tag seen in the window, over the window and its baseline."""
        window = range(now_slot - window_slots + 1, now_slot + 1)
        raw_tags = await self._redis.sunion([self._tags(s) for s in window])
        tags = sorted(t.decode() if isinstance(t, bytes) else t for t in raw_tags)
        slots = range(window.start - baseline_slots, now_slot + 1)
        pipe = self._redis.pipeline(transaction=False)
        keys = [(tag, slot) for tag in tags for slot in slots]
        for tag, slot in keys:
            pipe.smembers(self._cell(tag, slot))
        state = TagSlots()
        for (tag, slot), members in zip(keys, await pipe.execute(), strict=True):
            for member in members:
                author, post = (member.decode() if isinstance(member, bytes) else member).split(":")
                state.add(tag, slot, int(author), int(post))
        return state


class TrendingRankings:
    """The ranked list of each window, computed by the stream workers, read by the API in one GET."""

    def __init__(self, redis: Redis, namespace: str, ttl_s: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s

    def _key(self, window: str) -> str:
        return f"{self._ns}:trend:ranking:{window}"

    async def save(self, window: str, items: list[dict]) -> None:
        await self._redis.set(self._key(window), orjson.dumps(items), ex=self._ttl_s)

    async def load(self, window: str) -> list[dict]:
        raw = await self._redis.get(self._key(window))
        return orjson.loads(raw) if raw else []
