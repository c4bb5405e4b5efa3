"""Paging through a counted set's members (app/storage/counted_set.py): who liked a post, who viewed a story.

The members sit in bucketed partitions `((owner, bucket), member)` and an index table lists the
owner's buckets. A page walks the buckets newest first and each one by member id, so the
position after a page is (bucket, member id): members added later land in the open (newest)
bucket or ahead of the position, and never make a page repeat or skip one.
"""

from __future__ import annotations

from app.storage.cassandra import CassandraSession
from app.storage.counted_set import CountedSetTables
from app.storage.paging import FIRST_MEMBER, walk_buckets

BUCKETS_PER_READ = 100



class MemberPages:
    def __init__(self, cass: CassandraSession, tables: CountedSetTables) -> None:
        self._cass = cass
        self._t = tables

    async def prepare(self) -> MemberPages:
        t, p = self._t, self._cass.prepare
        self._page = await p(
            f"SELECT {t.member} AS member FROM {t.members} WHERE {t.owner} = ? AND bucket = ? AND {t.member} > ?"
            " LIMIT ?"
        )
        self._buckets_from = await p(
            f"SELECT bucket FROM {t.index} WHERE {t.owner} = ? AND bucket <= ? LIMIT {BUCKETS_PER_READ}"
        )
        return self

    async def page(self, owner: int, bucket: int, after: int, limit: int) -> tuple[list[int], int | None]:
        """Up to `limit` member ids after (bucket, after), newest bucket first and by member id within one.

        Returns the ids and the bucket of the last one (None when there are none)."""

        async def buckets_from(b: int) -> list[int]:
            return [row.bucket for row in await self._cass.rows(self._buckets_from, (owner, b))]

        async def items_in(b: int, start: int, n: int) -> list[int]:
            return [row.member for row in await self._cass.rows(self._page, (owner, b, start, n))]

        return await walk_buckets(buckets_from, items_in, bucket=bucket, position=after,
                                  bucket_start=FIRST_MEMBER, limit=limit, buckets_per_read=BUCKETS_PER_READ)
