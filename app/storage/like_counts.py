"""The like count a like's reply carries, kept in Redis so a client sees its own action at once.

`likes:<post>` starts from the stored count (posts.like_count, exact but a batch behind) and
moves by one for every like or unlike that changed an edge. The like worker overwrites it with
the exact count after each batch it applies (only while the key exists), which also erases any
drift: concurrent first requests that both seeded it, or a change whose event never went out.
Nothing reads this key but the like and unlike replies; posts show the stored count.
"""

from __future__ import annotations

from typing import NamedTuple

from redis.asyncio import Redis

from app.redis_breaker import RedisBreaker
from app.settings import Settings

# KEYS: the count key, then any version keys to increment (the liker's cached feed page, which
# shows liked_by_me, goes stale in the same round trip); ARGV: the change (-1, 0, 1), the stored
# count to start from, the count's TTL, the version keys' TTL
MOVE_COUNT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[2])
end
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n < 0 then
  n = 0
  redis.call('SET', KEYS[1], 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
for i = 2, #KEYS do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[4])
end
return n
"""


class Stale(NamedTuple):
    keys: list[str]
    ttl_s: int


class LikeCounts:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s
        self._breaker = RedisBreaker("like counts")
        self._move = redis.register_script(MOVE_COUNT)

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> LikeCounts:
        return cls(redis, namespace=settings.cassandra_keyspace, ttl_s=settings.like_count_cache_ttl_s)

    def key(self, post_id: int) -> str:
        return f"{self._ns}:likes:{post_id}"

    @property
    def stats_key(self) -> str:
        """A hash of the like worker's running totals: events, batches, count_writes (for operators
        and the like benchmark: `redis-cli HGETALL photos:stats:like_worker`)."""
        return f"{self._ns}:stats:like_worker"

    async def move(self, post_id: int, change: int, stored: int, stale: Stale | None = None) -> int:
        """The count after `change`; without Redis, the stored count moved by `change`. `stale`: version
        keys to increment in the same round trip, and their TTL."""
        bump, bump_ttl = stale or ([], 0)

        async def run() -> int:
            return int(await self._move(keys=[self.key(post_id), *bump], args=[change, stored, self._ttl_s, bump_ttl]))

        return await self._breaker.call("move", run, max(stored + change, 0))

    async def settle(self, counts: dict[int, int]) -> None:
        """Overwrite the keys that exist with exact counts (the like worker, after each batch)."""

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for post_id, count in counts.items():
                    pipe.set(self.key(post_id), count, xx=True, keepttl=True)
                await pipe.execute()

        await self._breaker.call("settle", run, None)

    async def note_batch(self, events: int, count_writes: int) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(self.stats_key, "events", events)
                pipe.hincrby(self.stats_key, "batches", 1)
                pipe.hincrby(self.stats_key, "count_writes", count_writes)
                await pipe.execute()

        await self._breaker.call("note_batch", run, None)
