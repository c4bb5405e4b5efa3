"""Redis state of the feed: the cached first page per reader, and who is an active reader.

Nothing here is the truth. A lost, flushed or unreachable Redis costs work, never correctness:
- `feed:<user>` holds the reader's current ranked snapshot and its rendered first page for
  feed_cache_ttl_s, tagged with `feedver:<user>` as it was when the page was built. Fan-out
  increments `feedver:<user>` when it pushes to the reader, which makes the entry stale at once
  (a plain delete could lose to a reader storing a page built just before the push).
  A miss builds the page from Cassandra. A deleted post is noted in `deleted:<post>` for as long
  as a cached page may hold it; the read script (OPEN_FEED) checks the page's ids (`feedids:<user>`)
  against those keys in the same round trip and the post is left out.
- `active:<user>` exists while the reader has opened their feed within feed_inactive_after_days.
  Fan-out pushes only to active readers; a reader without the key gets their feed rebuilt on
  their next read (Mastodon's approach), so a flushed Redis means rebuilds, not missing posts.
  While Redis cannot answer, fan-out treats every follower as active.

Every call gives up after the client's short timeout and then leaves Redis alone for a few
seconds (app/redis_breaker.py), so a hung Redis does not add its timeout to every feed read.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from redis.asyncio import Redis

from app.redis_breaker import RedisBreaker
from app.settings import Settings

# One round trip for a feed read: refresh the activity mark (returning the old one), fetch the cached
# first page, its version, and which of its posts were deleted since it was cached.
# KEYS: active, feed, feedver, feedids; ARGV: active TTL, prefix of the deleted-post keys.
# The deleted-post keys are not in KEYS, so the script needs a single (non-Cluster) Redis, as the
# local stack and a primary/replica pair with Sentinel are.
OPEN_FEED = """
local was_active = redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'GET')
local page = redis.call('GET', KEYS[2])
local version = redis.call('GET', KEYS[3])
local gone = {}
local ids = page and redis.call('GET', KEYS[4])
if ids then
  for id in string.gmatch(ids, '%d+') do
    if redis.call('EXISTS', ARGV[2] .. id) == 1 then gone[#gone + 1] = id end
  end
end
return {was_active, page, version, gone}
"""


class FeedCache:
    def __init__(self, redis: Redis, namespace: str, first_page_ttl_s: int, active_ttl_s: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._first_page_ttl_s = first_page_ttl_s
        self._version_ttl_s = 2 * first_page_ttl_s
        self._active_ttl_s = active_ttl_s
        self._breaker = RedisBreaker("feed cache")
        self._open_feed = redis.register_script(OPEN_FEED)

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> FeedCache:
        return cls(
            redis,
            namespace=settings.cassandra_keyspace,  # a test keyspace never shares keys with a dev system
            first_page_ttl_s=settings.feed_cache_ttl_s,
            active_ttl_s=settings.feed_inactive_after_days * 86400,
        )

    def feed_key(self, user_id: int) -> str:
        return f"{self._ns}:feed:{user_id}"

    @property
    def version_ttl_s(self) -> int:
        return self._version_ttl_s

    def version_key(self, user_id: int) -> str:
        return f"{self._ns}:feedver:{user_id}"

    def ids_key(self, user_id: int) -> str:
        return f"{self._ns}:feedids:{user_id}"

    def deleted_key(self, post_id: int) -> str:
        return f"{self._ns}:deleted:{post_id}"

    def active_key(self, user_id: int) -> str:
        return f"{self._ns}:active:{user_id}"

    @property
    def available(self) -> bool:
        return self._breaker.available

    # --- reads ---------------------------------------------------------------
    async def open_feed(self, user_id: int) -> tuple[bool | None, dict | None, int]:
        """Mark the reader active; return (were they active before, their cached first page, its version).

        The cached page is returned only when no push has happened since it was stored (its version
        still matches). (None, None, 0) when Redis cannot answer: activity unknown, nothing cached."""

        async def run() -> tuple[bool | None, dict | None, int]:
            keys = [self.active_key(user_id), self.feed_key(user_id), self.version_key(user_id), self.ids_key(user_id)]
            was_active, cached, version, gone = await self._open_feed(
                keys=keys, args=[self._active_ttl_s, f"{self._ns}:deleted:"]
            )
            version = int(version or 0)
            page = orjson.loads(cached) if cached else None
            if page is not None and page.get("v") != version:
                page = None
            if page is not None and gone:
                deleted = {item.decode() for item in gone}
                page["items"] = [item for item in page["items"] if item["id"] not in deleted]
            return was_active is not None, page, version

        return await self._breaker.call("open_feed", run, (None, None, 0))

    async def active_among(self, user_ids: list[int]) -> set[int] | None:
        """Which of the readers are active (one round trip); None when Redis cannot say."""
        if not user_ids:
            return set()

        async def run() -> set[int]:
            values = await self._redis.mget([self.active_key(uid) for uid in user_ids])
            return {uid for uid, value in zip(user_ids, values, strict=True) if value is not None}

        return await self._breaker.call("active_among", run, None)

    # --- writes --------------------------------------------------------------
    async def store_first_page(self, user_id: int, value: dict, version: int) -> None:
        """Cache the first page as of `version` (read before the page was built, so a push that
        lands meanwhile makes this entry stale at once)."""

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self.feed_key(user_id), orjson.dumps({**value, "v": version}), ex=self._first_page_ttl_s)
                ids = " ".join(item["id"] for item in value["items"])
                pipe.set(self.ids_key(user_id), ids, ex=self._first_page_ttl_s)
                pipe.expire(self.version_key(user_id), self._version_ttl_s)  # outlives the entry it guards
                await pipe.execute()

        await self._breaker.call("store", run, None)

    async def invalidate(self, user_ids: Iterable[int]) -> bool:
        """Make these readers' cached first pages stale; False when Redis could not be told."""
        keys = [self.version_key(uid) for uid in user_ids]
        if not keys:
            return True

        async def run() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                    pipe.expire(key, self._version_ttl_s)
                await pipe.execute()
            return True

        return await self._breaker.call("invalidate", run, False)

    async def note_deleted(self, post_id: int) -> None:
        """Remember a deletion for as long as a cached first page can hold the post."""

        async def run() -> None:
            await self._redis.set(self.deleted_key(post_id), b"1", ex=self._first_page_ttl_s + 5)

        await self._breaker.call("note_deleted", run, None)

    async def forget_active(self, user_id: int) -> None:
        """Make the next read rebuild the feed (a rebuild that failed half way)."""

        async def run() -> None:
            await self._redis.delete(self.active_key(user_id))

        await self._breaker.call("forget_active", run, None)
