"""Exact counts by recounting: a bucket's rows are counted, the buckets summed, the total written.

Followers and a user's posts are both stored as bucketed partitions with an index table that
holds each bucket's count. Recounting from those rows, instead of incrementing, makes every
agent idempotent: a duplicated or replayed event recounts the same rows to the same number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.events import PostCreated, PostDeleted
from app.storage.cassandra import CassandraSession
from app.storage.timelines import BucketedTimeline

COUNT_TIMEOUT_S = 30.0  # a full bucket is 100,000 rows


@dataclass(frozen=True)
class CountedBuckets:
    items: str  # the bucketed table: followers, posts_by_user
    key: str  # its user column: user_id, author_id
    buckets: str  # the index with per-bucket counts: follower_buckets, user_post_buckets
    bucket_count: str  # the count column of the index: follower_count, post_count
    total: str  # the column holding the sum: follower_count, post_count
    total_table: str = "users"  # the table of that column (hashtags for a tag's posts)
    total_key: str = "user_id"  # its key column


FOLLOWERS = CountedBuckets("followers", "user_id", "follower_buckets", "follower_count", "follower_count")
USER_POSTS = CountedBuckets("posts_by_user", "author_id", "user_post_buckets", "post_count", "post_count")
HASHTAG_POSTS = CountedBuckets("posts_by_hashtag", "tag", "hashtag_buckets", "post_count", "post_count",
                               total_table="hashtags", total_key="tag")


class BucketRecounter:
    def __init__(self, cass: CassandraSession, counted: CountedBuckets) -> None:
        self._cass = cass
        self._c = counted

    async def prepare(self) -> BucketRecounter:
        c, p = self._c, self._cass.prepare
        self._count = await p(f"SELECT COUNT(*) AS n FROM {c.items} WHERE {c.key} = ? AND bucket = ?")
        self._save_bucket = await p(f"UPDATE {c.buckets} SET {c.bucket_count} = ? WHERE {c.key} = ? AND bucket = ?")
        self._bucket_counts = await p(f"SELECT {c.bucket_count} AS n FROM {c.buckets} WHERE {c.key} = ?")
        # stamped with the time the buckets were read: of two concurrent recounts the later one wins
        self._save_total = await p(
            f"UPDATE {c.total_table} USING TIMESTAMP ? SET {c.total} = ? WHERE {c.total_key} = ?")
        return self

    async def recount_bucket(self, key: int | str, bucket: int) -> int:
        count = (await self._cass.execute(self._count, (key, bucket), timeout=COUNT_TIMEOUT_S)).current_rows[0].n
        await self._cass.execute(self._save_bucket, (count, key, bucket))
        return count

    async def save_total(self, key: int | str) -> int:
        """Sum the buckets' counts into the total column (`users`, `hashtags`); returns the total written."""
        read_at = time.time_ns() // 1000
        rows = await self._cass.rows(self._bucket_counts, (key,))
        total = sum(row.n or 0 for row in rows)
        await self._cass.execute(self._save_total, (read_at, total, key))
        return total


async def recount_timeline(
    recounter: BucketRecounter, timeline: BucketedTimeline, events: list[PostCreated | PostDeleted],
    places: Callable[[PostCreated | PostDeleted], Iterable[tuple[int | str, int]]],
) -> dict[int | str, int]:
    """Recount every (key, bucket) of `timeline` the post events touch, then their totals (returned by key).

    `places(event)` names where the event's post sits (its author's month, each tag's hour). The API
    publishes PostDeleted before it removes the rows; removing them here too (idempotent) makes sure
    the recount cannot still see the post."""
    deleted = [e for e in events if isinstance(e, PostDeleted)]
    await asyncio.gather(*(timeline.remove(key, bucket, e.post_id) for e in deleted for key, bucket in places(e)))
    buckets = {place for e in events for place in places(e)}
    await asyncio.gather(*(recounter.recount_bucket(key, bucket) for key, bucket in buckets))
    keys = sorted({key for key, _ in buckets})
    return dict(zip(keys, await asyncio.gather(*(recounter.save_total(key) for key in keys)), strict=True))
