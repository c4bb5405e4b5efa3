"""Redis copies of `users` profiles, for hydrating pages of posts (their authors) without a read per author.

`user:<id>` holds the profile fields of a `users` row (username, display name, bio, creation time) as
JSON for user_cache_ttl_s; never the counts, which the follow and post workers keep in the row and
which are read from there. A miss is read from Cassandra and filled with SET NX.

A profile edit writes the row, then sets the key to a marker (`-`) for a short while
(`EDIT_MARKER_S`): readers treat it as a miss and read the row, and a reader that read the old row
just before the edit cannot fill the key over the marker (NX), so the edit shows at once. Every call
goes through a breaker (app/redis_breaker.py): with Redis down, profiles are read from Cassandra.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from redis.asyncio import Redis

from app.redis_breaker import RedisBreaker
from app.settings import Settings

MARKER = b"-"
EDIT_MARKER_S = 30  # far longer than a row read and the fill that follows it
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(at: datetime | None) -> int | None:
    if at is None:
        return None
    if at.tzinfo is None:  # the driver returns naive UTC datetimes
        at = at.replace(tzinfo=UTC)
    return (at - EPOCH) // timedelta(microseconds=1)


def from_micros(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class CachedUser:
    """The profile fields of a `users` row, with the row's attribute names."""

    user_id: int
    username: str | None
    display_name: str | None
    bio: str | None
    created_at: datetime | None


def encode_user(row) -> bytes:
    return orjson.dumps({"u": row.username, "d": row.display_name, "b": row.bio, "t": to_micros(row.created_at)})


def decode_user(user_id: int, value: bytes) -> CachedUser:
    data = orjson.loads(value)
    return CachedUser(user_id, data["u"], data["d"], data["b"], from_micros(data["t"]))


class UserCache:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s
        self._breaker = RedisBreaker("user cache")

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> UserCache:
        return cls(redis, namespace=settings.cassandra_keyspace, ttl_s=settings.user_cache_ttl_s)

    @property
    def prefix(self) -> str:
        return f"{self._ns}:user:"

    def key(self, user_id: int) -> str:
        return f"{self.prefix}{user_id}"

    @property
    def available(self) -> bool:
        return self._breaker.available

    def decode(self, user_id: int, value: bytes | None) -> CachedUser | None:
        """A cached value as a profile; None for a miss or an edit marker."""
        return None if value is None or value == MARKER else decode_user(user_id, value)

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, CachedUser] | None:
        """The cached profiles among `user_ids` (one MGET); None when Redis cannot answer."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}

        async def run() -> dict[int, CachedUser]:
            values = await self._redis.mget([self.key(uid) for uid in ids])
            found = {uid: self.decode(uid, value) for uid, value in zip(ids, values, strict=True)}
            return {uid: user for uid, user in found.items() if user is not None}

        return await self._breaker.call("get_many", run, None)

    async def fill(self, rows: Iterable) -> None:
        """Cache rows just read from Cassandra, unless an entry (or an edit marker) is there."""
        rows = [row for row in rows if row is not None and row.username is not None]
        if not rows:
            return

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.set(self.key(row.user_id), encode_user(row), ex=self._ttl_s, nx=True)
                await pipe.execute()

        await self._breaker.call("fill", run, None)

    async def invalidate(self, user_id: int) -> bool:
        """The profile was edited: readers go to the row for a while, and no older copy can come back.
        False when Redis could not be told (the entry then lives out its TTL)."""

        async def run() -> bool:
            await self._redis.set(self.key(user_id), MARKER, ex=EDIT_MARKER_S)
            return True

        return await self._breaker.call("invalidate", run, False)
