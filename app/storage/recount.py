"""Exact counts by recounting: a bucket's rows are counted, the buckets summed, the total written.

Followers and a user's posts are both stored as bucketed partitions with an index table that
holds each bucket's count. Recounting from those rows, instead of incrementing, makes every
agent idempotent: a duplicated or replayed event recounts the same rows to the same number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.storage.cassandra import CassandraSession

COUNT_TIMEOUT_S = 30.0  # a full bucket is 100,000 rows
BUCKETS_PAGE = 1000  # index rows a round trip


@dataclass(frozen=True)
class CountedBuckets:
    items: str  # the bucketed table: followers, posts_by_user
    key: str  # its user column: user_id, author_id
    buckets: str  # the index with per-bucket counts: follower_buckets, user_post_buckets
    bucket_count: str  # the count column of the index: follower_count, post_count
    total: str  # the column holding the sum: follower_count, post_count
    total_table: str = "users"  # the table of that column (hashtags for a tag's posts)
    total_key: str = "user_id"  # its key column


class BucketRecounter:
    def __init__(self, cass: CassandraSession, counted: CountedBuckets) -> None:
        self._cass = cass
        self._c = counted

    async def prepare(self) -> BucketRecounter:
        c, p = self._c, self._cass.prepare
        self._count = await p(f"SELECT COUNT(*) AS n FROM {c.items} WHERE {c.key} = ? AND bucket = ?")
        self._save_bucket = await p(f"UPDATE {c.buckets} SET {c.bucket_count} = ? WHERE {c.key} = ? AND bucket = ?")
        self._bucket_counts = await p(f"SELECT {c.bucket_count} AS n FROM {c.buckets} WHERE {c.key} = ?")
        self._buckets = await p(f"SELECT bucket, {c.bucket_count} AS n FROM {c.buckets} WHERE {c.key} = ?")
        # stamped with the time the buckets were read: of two concurrent recounts the later one wins
        self._save_total = await p(
            f"UPDATE {c.total_table} USING TIMESTAMP ? SET {c.total} = ? WHERE {c.total_key} = ?")
        return self

    async def recount_bucket(self, key: int | str, bucket: int) -> int:
        count = await self.count_bucket(key, bucket)
        await self._cass.execute(self._save_bucket, (count, key, bucket))
        return count

    async def count_bucket(self, key: int | str, bucket: int) -> int:
        """The rows of one bucket, counted (read only)."""
        return (await self._cass.execute(self._count, (key, bucket), timeout=COUNT_TIMEOUT_S)).current_rows[0].n

    async def buckets(self, key: int | str) -> dict[int, int]:
        """Every bucket of the key in the index, with the count stored for it (read only), read page by page: a
        tag used every hour has more buckets than one page holds."""
        rows = await self._cass.all_rows(self._buckets, (key,), fetch_size=BUCKETS_PAGE)
        return {row.bucket: row.n or 0 for row in rows}

    async def save_total(self, key: int | str) -> int:
        """Sum the buckets' counts into the total column (`users`, `hashtags`); returns the total written."""
        read_at = time.time_ns() // 1000
        rows = await self._cass.rows(self._bucket_counts, (key,))
        total = sum(row.n or 0 for row in rows)
        await self._cass.execute(self._save_total, (read_at, total, key))
        return total

