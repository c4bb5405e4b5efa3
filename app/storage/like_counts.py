"""The like request's Redis side: who likes what lately (dedupe and order), and the reply's count.

One script per like or unlike (`claim`), one round trip:
  - counts the request in the caller's rate-limit window (app/ratelimit.py owns the key) and stops
    there if the caller is over its limit;
  - reads the member key `likes:<post>:u:<user>` = "1:<t>:<bucket>" (liked) or "0:<t>" (unliked)
    and gives the request a new `t` = max(Redis TIME in microseconds, the key's `t` + 1), the write
    time of its edge (app/storage/likes.py), so a user's requests are ordered as Redis saw them,
    whichever API process sent them. The same state again (a retry) moves no count and keeps the
    like's bucket, but it too gets a new `t`: Redis may be behind the edge (an event published by a
    request whose claim was then put back, a write made while Redis was down), and the edge a request
    acknowledges must be the latest write of it. No key (never seen, expired after
    PHOTOS_LIKE_MEMBERSHIP_TTL_S, or Redis lost it) counts as a change: the reply's count may then
    be one off until the like worker settles it;
  - moves the count `likes:<post>` by the change (seeded from posts.like_count when absent) and makes
    the liker's cached feed page stale (it shows liked_by_me).
`release` puts a claim back when its event could not be published (only if no later request has
changed the member key since). The like worker overwrites the count with the exact one after each
batch it applies (only while the key exists), which also erases any drift. Nothing reads these keys
but the like and unlike requests; posts show the stored count.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from redis.asyncio import Redis

from app.redis_breaker import RedisBreaker
from app.settings import Settings

# KEYS: the count, the member key, the rate-limit window, then the version keys to increment when the
# edge changes. ARGV: want (1 like, 0 unlike), the stored count, the count's TTL, the member key's TTL,
# the bucket a new like names, the rate limit (0: none), the window's TTL, the version keys' TTL.
# Returns {0, count, t, change, bucket, new member value, previous member value} or {-1, hits} when over
# the rate limit (nothing else changed).
CLAIM = """
local limit = tonumber(ARGV[6])
if limit > 0 then
  local hits = redis.call('INCR', KEYS[3])
  if hits == 1 then redis.call('EXPIRE', KEYS[3], ARGV[7]) end
  if hits > limit then return {-1, hits} end
end
local want = ARGV[1]
local prev = redis.call('GET', KEYS[2])
local state, last, bucket = nil, 0, ARGV[5]
if prev then
  state = string.sub(prev, 1, 1)
  local sep = string.find(prev, ':', 3, true)
  if sep then
    last = tonumber(string.sub(prev, 3, sep - 1))
    if state == '1' then bucket = string.sub(prev, sep + 1) end
  else
    last = tonumber(string.sub(prev, 3))
  end
end
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000000 + tonumber(now[2])
if t <= last then t = last + 1 end
local change, value = 0, nil
if want == '1' then
  value = '1:' .. string.format('%d', t) .. ':' .. bucket
  if state ~= '1' then change = 1 end
else
  value = '0:' .. string.format('%d', t)
  if state ~= '0' then change = -1 end
end
redis.call('SET', KEYS[2], value, 'EX', ARGV[4])
if change ~= 0 then
  for i = 4, #KEYS do
    redis.call('INCR', KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[8])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[2])
end
local n = redis.call('INCRBY', KEYS[1], change)
if n < 0 then
  n = 0
  redis.call('SET', KEYS[1], 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {0, n, t, change, tonumber(bucket), value, prev or ''}
"""

# KEYS: the count; ARGV: the change (-1, 0, 1), the stored count to start from, the count's TTL. A plain move
# of the count, without membership (tools and tests; the like request uses CLAIM).
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
return n
"""

# KEYS: the count, the member key. ARGV: the value the claim wrote, the value before it ('' none), its change.
RELEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('DECRBY', KEYS[1], ARGV[3]) < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
end
return 1
"""


class RateWindow(NamedTuple):
    """A rate-limit window to count the request in (key, limit, the key's TTL); see app/ratelimit.py."""

    key: str
    limit: int
    ttl_s: int


class Claim(NamedTuple):
    """What a like or unlike request does to its edge, as Redis ordered it."""

    count: int  # the reply's like_count
    changed_us: int  # the edge's write time
    change: int  # -1, 0 or 1: what the request moved the count by
    bucket: int | None  # the likers bucket a like names (None for an unlike)
    in_redis: bool  # False: Redis was not reached (no dedupe, no rate count; the process's clock)
    written: str = ""  # the member value the claim wrote ("" when it wrote none), and the one before it
    previous: str = ""


class OverLimit(NamedTuple):
    hits: int


class LikeCounts:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int, membership_ttl_s: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s
        self._membership_ttl_s = membership_ttl_s
        self._breaker = RedisBreaker("like counts")
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        self._move = redis.register_script(MOVE_COUNT)

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> LikeCounts:
        return cls(redis, namespace=settings.cassandra_keyspace, ttl_s=settings.like_count_cache_ttl_s,
                   membership_ttl_s=settings.like_membership_ttl_s)

    def key(self, post_id: int) -> str:
        return f"{self._ns}:likes:{post_id}"

    def member_key(self, post_id: int, user_id: int) -> str:
        return f"{self._ns}:likes:{post_id}:u:{user_id}"

    @property
    def stats_key(self) -> str:
        """A hash of the like worker's running totals: events, batches, count_writes, edges_written (for operators
        and the like benchmark: `redis-cli HGETALL photos:stats:like_worker`)."""
        return f"{self._ns}:stats:like_worker"

    async def claim(
        self, user_id: int, post_id: int, liked: bool, stored: int, bucket: int,
        rate: RateWindow | None = None, stale: tuple[list[str], int] = ([], 0),
    ) -> Claim | OverLimit:
        """Order this request's change of the edge and move the reply's count (one round trip). Without
        Redis: the change assumed, the stored count moved by it, the time from this process's clock."""
        versions, versions_ttl = stale
        window = rate or RateWindow(self.key(post_id), 0, 0)

        async def run() -> Claim | OverLimit:
            reply = await self._claim(
                keys=[self.key(post_id), self.member_key(post_id, user_id), window.key, *versions],
                args=[1 if liked else 0, stored, self._ttl_s, self._membership_ttl_s, bucket, window.limit,
                      window.ttl_s, versions_ttl],
            )
            if reply[0] == -1:
                return OverLimit(int(reply[1]))
            _, count, changed_us, change, named, written, previous = reply
            return Claim(int(count), int(changed_us), int(change), int(named) if liked else None, True,
                         _text(written) if change else "", _text(previous))

        change = 1 if liked else -1
        fallback = Claim(max(stored + change, 0), time.time_ns() // 1000, change, bucket if liked else None, False)
        return await self._breaker.call("claim", run, fallback)

    async def release(self, user_id: int, post_id: int, claim: Claim) -> None:
        """Undo `claim` (its event was not published), unless a later request changed the member key since."""
        if not (claim.in_redis and claim.written):
            return

        async def run() -> None:
            await self._release(keys=[self.key(post_id), self.member_key(post_id, user_id)],
                                args=[claim.written, claim.previous, claim.change])

        await self._breaker.call("release", run, None)

    async def move(self, post_id: int, change: int, stored: int) -> int:
        """The count after `change`, starting from `stored` when absent; without Redis, `stored` moved by `change`."""

        async def run() -> int:
            return int(await self._move(keys=[self.key(post_id)], args=[change, stored, self._ttl_s]))

        return await self._breaker.call("move", run, max(stored + change, 0))

    async def settle(self, counts: dict[int, int]) -> None:
        """Overwrite the keys that exist with exact counts (the like worker, after each batch)."""

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for post_id, count in counts.items():
                    pipe.set(self.key(post_id), count, xx=True, keepttl=True)
                await pipe.execute()

        await self._breaker.call("settle", run, None)

    async def note_batch(self, events: int, count_writes: int, edges_written: int = 0) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(self.stats_key, "events", events)
                pipe.hincrby(self.stats_key, "batches", 1)
                pipe.hincrby(self.stats_key, "count_writes", count_writes)
                pipe.hincrby(self.stats_key, "edges_written", edges_written)
                await pipe.execute()

        await self._breaker.call("note_batch", run, None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
