"""Newest-first lists of ids split into time buckets, with an index of the non-empty buckets.

`posts_by_user` (monthly buckets) and `posts_by_hashtag` (hourly buckets) are both such a
list: an item table `((list_key, bucket), item_id DESC)` and an index table
`(list_key, bucket DESC)`. The bucket is a function of the item id's time, so a writer or a
deleter computes it without reading anything, and a page walks the index newest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.storage.cassandra import CassandraSession
from app.storage.paging import NO_UPPER_BOUND, walk_buckets

BUCKETS_PER_READ = 20


@dataclass(frozen=True)
class TimelineTables:
    items: str  # e.g. posts_by_user
    key: str  # e.g. author_id
    item: str  # e.g. post_id
    buckets: str  # e.g. user_post_buckets
    extra: tuple[str, ...] = ()  # further columns written with each item


class BucketedTimeline:
    def __init__(self, cass: CassandraSession, tables: TimelineTables) -> None:
        self._cass = cass
        self._t = tables

    async def prepare(self) -> BucketedTimeline:
        t, p = self._t, self._cass.prepare
        columns = ", ".join((t.key, "bucket", t.item, *t.extra))
        marks = ", ".join("?" * (3 + len(t.extra)))
        self._insert = await p(f"INSERT INTO {t.items} ({columns}) VALUES ({marks})")
        self._mark = await p(f"INSERT INTO {t.buckets} ({t.key}, bucket) VALUES (?, ?)")
        self._delete = await p(f"DELETE FROM {t.items} WHERE {t.key} = ? AND bucket = ? AND {t.item} = ?")
        self._buckets_from = await p(
            f"SELECT bucket FROM {t.buckets} WHERE {t.key} = ? AND bucket <= ? LIMIT {BUCKETS_PER_READ}"
        )
        self._page = await p(
            f"SELECT {t.item} FROM {t.items} WHERE {t.key} = ? AND bucket = ? AND {t.item} < ? LIMIT ?"
        )
        return self

    async def add(self, key, bucket: int, item_id: int, *extra) -> None:
        # the index row first: an item is never in a bucket that pages cannot find
        await self._cass.execute(self._mark, (key, bucket))
        await self._cass.execute(self._insert, (key, bucket, item_id, *extra))

    async def remove(self, key, bucket: int, item_id: int) -> None:
        await self._cass.execute(self._delete, (key, bucket, item_id))

    async def page(self, key, bucket: int, before: int, limit: int) -> tuple[list[int], int | None]:
        """Up to `limit` ids older than (bucket, before), newest first, and the bucket of the last one."""

        async def buckets_from(b: int) -> list[int]:
            return [row.bucket for row in await self._cass.rows(self._buckets_from, (key, b))]

        async def items_in(b: int, start: int, n: int) -> list[int]:
            return [getattr(row, self._t.item) for row in await self._cass.rows(self._page, (key, b, start, n))]

        return await walk_buckets(buckets_from, items_in, bucket=bucket, position=before,
                                  bucket_start=NO_UPPER_BOUND, limit=limit, buckets_per_read=BUCKETS_PER_READ)
