"""The like edges (`likes`, the truth) and the likers lists (`post_likers`, `post_like_buckets`).

Edges change only through lightweight transactions, so every request learns whether it changed
anything: of concurrent duplicate likes exactly one creates the edge, and a like racing an
unlike has one winner. The likers lists and counts are written only by the stream worker
(streams/like_counts.py) through `likers`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cassandra import ConsistencyLevel

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


class LikeRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass
        self._likers = MemberPages(cass, POST_LIKERS)
        self.likers = CountedSet(cass, POST_LIKERS)

    async def prepare(self) -> LikeRepository:
        p = self._cass.prepare
        self._claim = await p(
            "INSERT INTO likes (user_id, month, post_id, liked_at, bucket) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._edge = await p("SELECT liked_at, bucket FROM likes WHERE user_id = ? AND month = ? AND post_id = ?")
        self._release = await p("DELETE FROM likes WHERE user_id = ? AND month = ? AND post_id = ? IF bucket = ?")
        self._release_exact = await p(
            "DELETE FROM likes WHERE user_id = ? AND month = ? AND post_id = ? IF liked_at = ?"
        )
        self._liked_among = await p("SELECT post_id FROM likes WHERE user_id = ? AND month = ? AND post_id IN ?")
        self._sizes_from = await p(
            "SELECT user_id, month, COUNT(*) AS n FROM likes WHERE token(user_id, month) >= ?"
            " GROUP BY user_id, month LIMIT ?"
        )
        await self._likers.prepare()
        await self.likers.prepare()
        return self

    async def like(self, user_id: int, post_id: int, at: datetime, bucket: int) -> tuple[bool, int]:
        """Create the edge unless it exists: (whether this call created it, the edge's bucket)."""
        result = await self._cass.execute(self._claim, (user_id, month_bucket(post_id), post_id, at, bucket))
        if result.was_applied:
            return True, bucket
        return False, result.current_rows[0].bucket

    async def edge(self, user_id: int, post_id: int, *, serial: bool = False) -> LikeEdge | None:
        consistency = ConsistencyLevel.LOCAL_SERIAL if serial else None
        rows = await self._cass.rows(self._edge, (user_id, month_bucket(post_id), post_id), consistency=consistency)
        return LikeEdge(rows[0].liked_at, rows[0].bucket) if rows else None

    async def unlike(self, user_id: int, post_id: int) -> LikeEdge | None:
        """Remove the edge if it exists: the edge this call removed, or None."""
        while True:
            edge = await self.edge(user_id, post_id, serial=True)  # sees every committed transaction
            if edge is None:
                return None
            result = await self._cass.execute(self._release, (user_id, month_bucket(post_id), post_id, edge.bucket))
            if result.was_applied:
                return edge
            # a concurrent unlike (and maybe a like) got in between: look again

    async def undo_like(self, user_id: int, post_id: int, liked_at: datetime) -> None:
        """Remove the edge this request created, unless another request has replaced it since."""
        await self._cass.execute(self._release_exact, (user_id, month_bucket(post_id), post_id, liked_at))

    async def undo_unlike(self, user_id: int, post_id: int, edge: LikeEdge) -> None:
        """Put back the edge this request removed, unless another request has liked again since."""
        await self._cass.execute(self._claim, (user_id, month_bucket(post_id), post_id, edge.liked_at, edge.bucket))

    async def liked_among(self, user_id: int, post_ids: Iterable[int]) -> set[int]:
        """Which of `post_ids` (a page) the user likes: one read per month the posts span."""
        by_month: dict[int, list[int]] = defaultdict(list)
        for post_id in post_ids:
            by_month[month_bucket(post_id)].append(post_id)
        liked: set[int] = set()
        for month, ids in by_month.items():
            liked.update(row.post_id for row in await self._cass.rows(self._liked_among, (user_id, month, ids)))
        return liked

    async def partition_sizes(self, from_token: int, limit: int) -> list:
        """(user_id, month, n) of up to `limit` `likes` partitions from a token on: one user's likes of one
        month's posts (loadtest/footprint.py's samples; each partition is bounded)."""
        return await self._cass.rows(self._sizes_from, (from_token, limit))

    async def likers_page(self, post_id: int, bucket: int, after: int, limit: int) -> tuple[list[int], int | None]:
        """Up to `limit` liker ids after (bucket, after), newest bucket first and by user id within one.

        Returns the ids and the bucket of the last one (None when there are none)."""
        return await self._likers.page(post_id, bucket, after, limit)
