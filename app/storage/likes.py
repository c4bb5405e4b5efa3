"""The like edges (`likes`, the truth) and the likers lists (`post_likers`, `post_like_buckets`).

An edge changes by one blind, timestamped write (no Paxos, no read before it): a like sets
`liked_at`, an unlike sets it to null, both `USING TIMESTAMP t` with `changed_us = t`, so of two
writes to one edge the later `t` wins wherever they meet (a replica, a retry, the worker rolling a
write forward). `t` is issued per (user, post) by Redis in the like request's one script
(app/storage/like_counts.py), strictly increasing, so a user's like and unlike are ordered as Redis
saw them whichever API process sent them. Writing the same (edge, t) twice is the same write: a
retry, or the worker applying a write the API never got to, changes nothing.

`buckets` only grows: every `post_likers` bucket a like of the pair ever named. A blind write cannot
know which bucket an earlier like put the liker in, so it adds its own and the like worker keeps the
liker in the smallest of them (`EdgeState.home`) and out of the others. Rows from before migration
0011 carry their one bucket in `bucket`. The likers lists and counts are written only by the stream
worker (streams/like_counts.py) through `likers`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.ids import month_bucket
from app.storage.cassandra import CassandraSession
from app.storage.counted_set import CountedSet, CountedSetTables
from app.storage.member_pages import MemberPages

# who likes a post, in buckets with exact counts; written only by the like_counts agent (streams/like_counts.py)
POST_LIKERS = CountedSetTables(
    members="post_likers", owner="post_id", member="user_id", count="like_count", index="post_like_buckets",
    extra=("liked_at",),
)


@dataclass(frozen=True)
class LikeEdge:
    liked_at: datetime
    bucket: int


@dataclass(frozen=True)
class EdgeState:
    """What the `likes` row of one (user, post) says, liked or not (the like worker's view)."""

    liked_at: datetime | None  # None: not liked
    buckets: frozenset[int]  # every likers bucket a like of this pair has named
    changed_us: int | None  # the write time of the last like or unlike; None for rows older than migration 0011

    @property
    def liked(self) -> bool:
        return self.liked_at is not None

    @property
    def home(self) -> int | None:
        """The bucket the liker belongs in while liked: the smallest named, so it never moves."""
        return min(self.buckets) if self.liked and self.buckets else None

    def older_than(self, changed_us: int, liked: bool) -> bool:
        """Whether a write (changed_us, liked) would replace what this row shows: a later timestamp,
        or the same one with the other value (Cassandra lets the unlike's null win a tie)."""
        if self.changed_us is None or changed_us > self.changed_us:
            return True
        return changed_us == self.changed_us and self.liked and not liked


def micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


class LikeRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass
        self._likers = MemberPages(cass, POST_LIKERS)
        self.likers = CountedSet(cass, POST_LIKERS)

    async def prepare(self) -> LikeRepository:
        p = self._cass.prepare
        where = "WHERE user_id = ? AND month = ? AND post_id = ?"
        self._like = await p(
            f"UPDATE likes USING TIMESTAMP ? SET liked_at = ?, changed_us = ?, buckets = buckets + ? {where}"
        )
        self._unlike = await p(f"UPDATE likes USING TIMESTAMP ? SET liked_at = null, changed_us = ? {where}")
        self._state = await p(f"SELECT liked_at, bucket, buckets, changed_us FROM likes {where}")
        self._liked_among = await p(
            "SELECT post_id, liked_at FROM likes WHERE user_id = ? AND month = ? AND post_id IN ?"
        )
        self._sizes_from = await p(
            "SELECT user_id, month, COUNT(*) AS n FROM likes WHERE token(user_id, month) >= ?"
            " GROUP BY user_id, month LIMIT ?"
        )
        await self._likers.prepare()
        await self.likers.prepare()
        return self

    async def write(self, user_id: int, post_id: int, liked: bool, changed_us: int, bucket: int | None) -> None:
        """The edge as one request left it: liked (naming likers bucket `bucket`) or not, as of `changed_us`
        (microseconds, also the write's timestamp). Blind and idempotent: the later `changed_us` wins."""
        month = month_bucket(post_id)
        if liked:
            params = (changed_us, from_micros(changed_us), changed_us, {bucket or 0}, user_id, month, post_id)
            await self._cass.execute(self._like, params)
        else:
            await self._cass.execute(self._unlike, (changed_us, changed_us, user_id, month, post_id))

    async def state(self, user_id: int, post_id: int) -> EdgeState | None:
        """The row as stored (None: never written)."""
        row = await self._cass.one(self._state, (user_id, month_bucket(post_id), post_id))
        if row is None:
            return None
        buckets = set(row.buckets or ())
        if row.bucket is not None:
            buckets.add(row.bucket)
        return EdgeState(row.liked_at, frozenset(buckets), row.changed_us)

    async def edge(self, user_id: int, post_id: int) -> LikeEdge | None:
        """The like of `user_id` on `post_id` and its likers bucket, or None when not liked."""
        state = await self.state(user_id, post_id)
        if state is None or state.home is None:
            return None
        return LikeEdge(state.liked_at, state.home)

    # --- read-then-write conveniences for tools and tests; the API writes through `write` -------------
    async def like(self, user_id: int, post_id: int, at: datetime, bucket: int) -> tuple[bool, int]:
        """Like now: (whether it was not liked before, the edge's bucket). Not atomic with concurrent writers."""
        before = await self.state(user_id, post_id)
        await self.write(user_id, post_id, True, max(micros(at), _now_us(before)), bucket)
        after = EdgeState(at, (before.buckets if before else frozenset()) | {bucket}, None)
        return not (before and before.liked), after.home

    async def unlike(self, user_id: int, post_id: int) -> LikeEdge | None:
        """Unlike now: the edge it removed, or None. Not atomic with concurrent writers."""
        before = await self.state(user_id, post_id)
        await self.write(user_id, post_id, False, _now_us(before), None)
        return LikeEdge(before.liked_at, before.home) if before and before.home is not None else None

    async def liked_among(self, user_id: int, post_ids: Iterable[int]) -> set[int]:
        """Which of `post_ids` (a page) the user likes: one read per month the posts span."""
        by_month: dict[int, list[int]] = defaultdict(list)
        for post_id in post_ids:
            by_month[month_bucket(post_id)].append(post_id)
        liked: set[int] = set()
        for month, ids in by_month.items():
            rows = await self._cass.rows(self._liked_among, (user_id, month, ids))
            liked.update(row.post_id for row in rows if row.liked_at is not None)  # unliked rows stay, null
        return liked

    async def partition_sizes(self, from_token: int, limit: int) -> list:
        """(user_id, month, n) of up to `limit` `likes` partitions from a token on: one user's likes of one
        month's posts (loadtest/footprint.py's samples; each partition is bounded)."""
        return await self._cass.rows(self._sizes_from, (from_token, limit))

    async def likers_page(self, post_id: int, bucket: int, after: int, limit: int) -> tuple[list[int], int | None]:
        """Up to `limit` liker ids after (bucket, after), newest bucket first and by user id within one.

        Returns the ids and the bucket of the last one (None when there are none)."""
        return await self._likers.page(post_id, bucket, after, limit)


def _now_us(before: EdgeState | None) -> int:
    """This process's clock in microseconds, after the row's last write."""
    return max(time.time_ns() // 1000, (before.changed_us or 0) + 1 if before else 0)
