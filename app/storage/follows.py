"""The follow graph: `following` (the truth), its bucketed mirror `followers` and `follower_buckets`.

`following.edge_count` (a static column: one value per follower's partition) is how many edges the partition
holds. Every edge write changes it in the same conditional batch (`IF NOT EXISTS` / `IF EXISTS` on the edge,
`IF edge_count = <what was read>` on the count), so the two cannot disagree, and the follow cap is checked
against it: two concurrent follows cannot both take the last place, since the second's batch finds the count
moved and tries again with the new one. A partition written before the column (or by the seeder) has no count
yet; its first edge write counts the partition (at most `max_following` rows) and sets it `IF edge_count = null`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType

from app.storage.cassandra import CassandraSession
from app.storage.paging import FIRST_MEMBER
from app.storage.recount import BucketRecounter, CountedBuckets

FOLLOWER_COUNTS = CountedBuckets("followers", "user_id", "follower_buckets", "follower_count", "follower_count")
# attempts of one edge write whose count keeps moving under it (each miss means another of the same user's
# follows or unfollows landed): far more than a person's concurrent follows
EDGE_WRITE_ATTEMPTS = 50


class EdgeWriteContended(Exception):
    """The follower's count moved under every attempt of an edge write (a flood of concurrent follows)."""


class FollowRepository:
    """`following` is the truth; `followers` its bucketed mirror; `follower_buckets` lists the buckets."""

    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass
        self.follower_counts = BucketRecounter(cass, FOLLOWER_COUNTS)  # recounted by streams/follow_graph.py

    async def prepare(self) -> FollowRepository:
        p = self._cass.prepare
        await self.follower_counts.prepare()
        # COUNT(followee_id), not COUNT(*): a partition holding only its static edge_count reads as one row
        self._count_following = await p("SELECT COUNT(followee_id) AS n FROM following WHERE user_id = ?")
        self._edge_count = await p("SELECT edge_count FROM following WHERE user_id = ? LIMIT 1")
        self._set_edge_count = await p("UPDATE following SET edge_count = ? WHERE user_id = ? IF edge_count = ?")
        self._claim_edge = await p(
            "INSERT INTO following (user_id, followee_id, followed_at, follower_bucket)"
            " VALUES (?, ?, ?, ?) IF NOT EXISTS"
        )
        self._edge = await p(
            "SELECT follower_bucket, followed_at, edge_count FROM following WHERE user_id = ? AND followee_id = ?"
        )
        self._following_among = await p(
            "SELECT followee_id FROM following WHERE user_id = ? AND followee_id IN ?"
        )
        self._delete_edge = await p("DELETE FROM following WHERE user_id = ? AND followee_id = ? IF EXISTS")
        self._insert_mirror = await p(
            "INSERT INTO followers (user_id, bucket, follower_id, followed_at) VALUES (?, ?, ?, ?)"
        )
        self._delete_mirror = await p("DELETE FROM followers WHERE user_id = ? AND bucket = ? AND follower_id = ?")
        self._mark_bucket = await p("INSERT INTO follower_buckets (user_id, bucket) VALUES (?, ?)")
        self._all_following = await p("SELECT followee_id FROM following WHERE user_id = ?")
        self._following_page = await p(
            "SELECT followee_id FROM following WHERE user_id = ? AND followee_id > ? LIMIT ?"
        )
        self._followers_page = await p(
            "SELECT follower_id FROM followers WHERE user_id = ? AND bucket = ? AND follower_id > ? LIMIT ?"
        )
        self._buckets_from = await p("SELECT bucket FROM follower_buckets WHERE user_id = ? AND bucket >= ? LIMIT 100")
        self._mirror_row = await p(
            "SELECT follower_id FROM followers WHERE user_id = ? AND bucket = ? AND follower_id = ?"
        )
        self._sizes_from = await p(
            "SELECT user_id, COUNT(followee_id) AS n FROM following WHERE token(user_id) >= ? GROUP BY user_id LIMIT ?"
        )
        return self

    async def claim_edge(self, follower_id: int, followee_id: int, at: datetime, bucket: int,
                         max_following: int | None = None) -> int | None:
        """Create the edge unless it exists, counted in `edge_count` in the same conditional batch: the bucket of
        the edge that now exists, or None when the follower already follows `max_following` others (nothing is
        written; no cap when None). EdgeWriteContended when the count kept moving."""
        count = await self._stored_edge_count(follower_id)
        for _ in range(EDGE_WRITE_ATTEMPTS):
            expected = count
            if count is None:
                count = await self.count_following(follower_id)
            if max_following is not None and count >= max_following:
                edge = await self.edge(follower_id, followee_id)
                return None if edge is None else edge.follower_bucket
            result = await self._counted(
                self._claim_edge, (follower_id, followee_id, at, bucket), follower_id, expected, count + 1
            )
            if result.was_applied:
                return bucket
            edge = _edge_among(result.current_rows, followee_id)
            if edge is not None:
                return edge.follower_bucket
            count = result.current_rows[0].edge_count
        raise EdgeWriteContended(f"user {follower_id}: following count kept moving")

    async def edge(self, follower_id: int, followee_id: int, *, serial: bool = False):
        """The `following` row (with its partition's `edge_count`), or None; `serial` reads at LOCAL_SERIAL,
        which first finishes a conditional write left half done (after a request that failed mid-transaction)."""
        consistency = ConsistencyLevel.LOCAL_SERIAL if serial else None
        rows = await self._cass.rows(self._edge, (follower_id, followee_id), consistency=consistency)
        return rows[0] if rows else None

    async def is_following(self, follower_id: int, followee_ids: Iterable[int]) -> set[int]:
        """Which of `followee_ids` (a page, at most 100) the follower follows: one partition read."""
        ids = list(followee_ids)
        if not ids:
            return set()
        return {row.followee_id for row in await self._cass.rows(self._following_among, (follower_id, ids))}

    async def delete_edge(self, follower_id: int, followee_id: int, edge=None) -> bool:
        """Delete the edge, uncounted from `edge_count` in the same conditional batch; False when there was none.
        `edge`: the row `edge()` read, whose `edge_count` saves a read. EdgeWriteContended when the count kept
        moving."""
        count = edge.edge_count if edge is not None else await self._stored_edge_count(follower_id)
        for _ in range(EDGE_WRITE_ATTEMPTS):
            expected = count
            if count is None:
                count = await self.count_following(follower_id)
            result = await self._counted(
                self._delete_edge, (follower_id, followee_id), follower_id, expected, max(count - 1, 0)
            )
            if result.was_applied:
                return True
            if _edge_among(result.current_rows, followee_id) is None:
                return False
            count = result.current_rows[0].edge_count
        raise EdgeWriteContended(f"user {follower_id}: following count kept moving")

    async def _counted(self, edge_write, params: tuple, follower_id: int, expected: int | None, count: int):
        """The conditional edge write and `edge_count` expected -> count, applied together or not at all."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(self._set_edge_count, (count, follower_id, expected))
        batch.add(edge_write, params)
        return await self._cass.execute(batch)

    async def _stored_edge_count(self, follower_id: int) -> int | None:
        """The partition's `edge_count`; None when it has none yet (or no partition)."""
        row = await self._cass.one(self._edge_count, (follower_id,))
        return None if row is None else row.edge_count

    async def write_mirror(self, followee_id: int, bucket: int, follower_id: int, at: datetime) -> None:
        await asyncio.gather(
            self._cass.execute(self._mark_bucket, (followee_id, bucket)),
            self._cass.execute(self._insert_mirror, (followee_id, bucket, follower_id, at)),
        )

    async def delete_mirror(self, followee_id: int, bucket: int, follower_id: int) -> None:
        await self._cass.execute(self._delete_mirror, (followee_id, bucket, follower_id))

    async def all_following(self, user_id: int) -> list[int]:
        """Everyone the user follows (at most max_following rows)."""
        rows = await self._cass.all_rows(self._all_following, (user_id,), fetch_size=5000)
        return [row.followee_id for row in rows if row.followee_id is not None]  # not the static-only row

    async def follower_pages(self, user_id: int, page_size: int = 1000) -> AsyncIterator[list[int]]:
        """Every follower id, a page at a time, bucket by bucket (fan-out walks these)."""
        bucket, after = 0, 0
        while True:
            ids, last_bucket = await self.followers_page(user_id, bucket, after, page_size)
            if ids:
                yield ids
            if len(ids) < page_size:
                return
            bucket, after = last_bucket, ids[-1]

    async def following_page(self, user_id: int, after: int, limit: int) -> list[int]:
        rows = await self._cass.rows(self._following_page, (user_id, after, limit))
        return [row.followee_id for row in rows]

    async def followers_page(self, user_id: int, bucket: int, after: int, limit: int) -> tuple[list[int], int | None]:
        """Up to `limit` follower ids after (bucket, after), walking buckets in order.

        Returns the ids and the bucket the last one came from (None when no ids)."""
        ids: list[int] = []
        last_bucket = None
        buckets = [row.bucket for row in await self._cass.rows(self._buckets_from, (user_id, bucket))]
        for b in buckets:
            start = after if b == bucket else 0
            rows = await self._cass.rows(self._followers_page, (user_id, b, start, limit - len(ids)))
            if rows:
                ids.extend(row.follower_id for row in rows)
                last_bucket = b
            if len(ids) >= limit:
                break
        return ids, last_bucket

    async def followers_in_bucket(self, user_id: int, bucket: int, limit: int) -> list[int]:
        """Up to `limit` follower ids of one mirror bucket, by id (checks of the mirror)."""
        rows = await self._cass.rows(self._followers_page, (user_id, bucket, FIRST_MEMBER, limit))
        return [row.follower_id for row in rows]

    async def all_followers_in_bucket(self, user_id: int, bucket: int, page_size: int = 1000) -> list[int]:
        """Every follower id of one mirror bucket (at most followers_per_bucket), by id, `page_size` a round trip
        (checks of the mirror: loadtest/audit.py)."""
        ids: list[int] = []
        after = FIRST_MEMBER
        while True:
            rows = await self._cass.rows(self._followers_page, (user_id, bucket, after, page_size))
            ids += [row.follower_id for row in rows]
            if len(rows) < page_size:
                return ids
            after = ids[-1]

    async def is_mirrored(self, followee_id: int, bucket: int, follower_id: int) -> bool:
        """Whether the `followers` mirror holds the edge in that bucket (checks of the mirror)."""
        return await self._cass.one(self._mirror_row, (followee_id, bucket, follower_id)) is not None

    async def partition_sizes(self, from_token: int, limit: int) -> list:
        """(user_id, n) of up to `limit` `following` partitions from a token on: how many each user follows
        (loadtest/footprint.py's samples; each partition is bounded by max_following)."""
        return await self._cass.rows(self._sizes_from, (from_token, limit))

    async def count_following(self, user_id: int) -> int:
        """How many users `user_id` follows, counted from the `following` partition."""
        return (await self._cass.one(self._count_following, (user_id,))).n


def _edge_among(rows: list, followee_id: int):
    """The edge to `followee_id` among the current rows a conditional batch that did not apply answers with."""
    return next((row for row in rows if getattr(row, "followee_id", None) == followee_id), None)
