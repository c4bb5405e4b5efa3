"""`media_sweep` and `media_sweep_progress`: media that may be left without a post, for the sweeper."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.ids import ID_EPOCH_MS
from app.storage.cassandra import CassandraSession

SWEEP_SHARDS = 256  # an hour of uploads at 1,150/s leaves ~16k rows and tombstones per partition
SWEEP_PAGE = 1000
SWEEP_LOOKBACK_HOURS = 7 * 24  # entries expire after this; the sweeper reads this far back


class MediaSweepLog:
    """`media_sweep`: media that may be left without a post, found again by the sweeper.

    Entries are placed by the hour they are written in (not the post's age), so the sweeper
    only ever reads recent hours."""

    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> MediaSweepLog:
        p = self._cass.prepare
        self._record = await p(
            "INSERT INTO media_sweep (bucket, shard, post_id, keys, reason, written_at) VALUES (?, ?, ?, ?, ?, ?)"
            f" USING TTL {SWEEP_LOOKBACK_HOURS * 3600}"
        )
        self._forget = await p("DELETE FROM media_sweep WHERE bucket = ? AND shard = ? AND post_id = ?")
        self._list = await p("SELECT post_id, keys, reason, written_at FROM media_sweep WHERE bucket = ? AND shard = ?")
        self._settled = await p("SELECT settled_bucket FROM media_sweep_progress WHERE name = 'media'")
        self._mark_settled = await p("UPDATE media_sweep_progress SET settled_bucket = ? WHERE name = 'media'")
        return self

    async def record(self, post_id: int, keys: Iterable[str], reason: str) -> SweepPlace:
        place = SweepPlace(bucket=current_hour_bucket(), shard=post_id % SWEEP_SHARDS)
        await self._cass.execute(
            self._record, (place.bucket, place.shard, post_id, set(keys), reason, datetime.now(UTC))
        )
        return place

    async def forget(self, place: SweepPlace, post_id: int) -> None:
        await self._cass.execute(self._forget, (place.bucket, place.shard, post_id))

    async def entries(self, place: SweepPlace) -> list:
        """Every record of one partition, page by page."""
        return await self._cass.all_rows(self._list, (place.bucket, place.shard), fetch_size=SWEEP_PAGE)

    async def settled_bucket(self) -> int | None:
        row = await self._cass.one(self._settled)
        return row.settled_bucket if row else None

    async def mark_settled(self, bucket: int) -> None:
        await self._cass.execute(self._mark_settled, (bucket,))


@dataclass(frozen=True)
class SweepPlace:
    bucket: int
    shard: int


def current_hour_bucket(now: float | None = None) -> int:
    return (int((time.time() if now is None else now) * 1000) - ID_EPOCH_MS) // 3_600_000
