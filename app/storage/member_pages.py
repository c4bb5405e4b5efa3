"""Paging through a counted set's members (app/storage/counted_set.py): who liked a post, who viewed a story.

The members sit in bucketed partitions `((owner, bucket), member)` and an index table lists the
owner's buckets. A page walks the buckets newest first and each one by member id, so the
position after a page is (bucket, member id): members added later land in the open (newest)
bucket or ahead of the position, and never make a page repeat or skip one.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.storage.cassandra import CassandraSession

BUCKETS_PER_READ = 100
LATEST_BUCKET = (1 << 31) - 1
FIRST_MEMBER = -(1 << 63)


@dataclass(frozen=True)
class MemberTables:
    members: str  # e.g. post_likers
    owner: str  # e.g. post_id
    member: str  # e.g. user_id
    index: str  # e.g. post_like_buckets


class MemberPages:
    def __init__(self, cass: CassandraSession, tables: MemberTables) -> None:
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
        ids: list[int] = []
        last_bucket = None
        while len(ids) < limit:
            buckets = [row.bucket for row in await self._cass.rows(self._buckets_from, (owner, bucket))]
            for b in buckets:
                start = after if b == bucket else FIRST_MEMBER
                rows = await self._cass.rows(self._page, (owner, b, start, limit - len(ids)))
                if rows:
                    ids.extend(row.member for row in rows)
                    last_bucket = b
                if len(ids) >= limit:
                    break
            if len(buckets) < BUCKETS_PER_READ:
                break
            bucket, after = buckets[-1] - 1, FIRST_MEMBER
        return ids, last_bucket
