"""`outbox` and `outbox_progress`: the events follows and comments owe the stream workers, until they are out.

A record is placed by the 10-second bucket it is written in (the writer's clock) and a random shard, so the
reconciler (app/outbox.py) finds every record by reading recent buckets, and reads each partition once:
after the bucket has grown older than the grace period, when nothing can be added to it any more.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from app.storage.cassandra import CassandraSession

BUCKET_S = 10  # a bucket holds the records of 10 seconds
OUTBOX_SHARDS = 64  # at 4,000 follows and comments a second, ~625 rows (tombstones, mostly) per partition
OUTBOX_PAGE = 500
OUTBOX_TTL_S = 7 * 24 * 3600  # the table's default_time_to_live (cql/migrations/0014_outbox.cql)
LOOKBACK_BUCKETS = OUTBOX_TTL_S // BUCKET_S  # older buckets hold nothing but expired records


@dataclass(frozen=True)
class Intent:
    """Where one record is, and when its writer wrote it (monotonic, for the writer's own deadline)."""

    bucket: int
    shard: int
    intent_id: uuid.UUID
    written_monotonic: float


class OutboxTable:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> OutboxTable:
        p = self._cass.prepare
        self._record = await p(
            "INSERT INTO outbox (bucket, shard, intent_id, topic, event_key, payload, written_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._forget = await p("DELETE FROM outbox WHERE bucket = ? AND shard = ? AND intent_id = ?")
        self._list = await p("SELECT intent_id, topic, event_key, payload FROM outbox WHERE bucket = ? AND shard = ?")
        self._settled = await p("SELECT settled_bucket FROM outbox_progress WHERE name = 'outbox'")
        self._mark_settled = await p("UPDATE outbox_progress SET settled_bucket = ? WHERE name = 'outbox'")
        return self

    async def record(self, topic: str, key: int, payload: bytes) -> Intent:
        now = time.time()
        intent = Intent(bucket_at(now), random.randrange(OUTBOX_SHARDS), uuid.uuid4(), time.monotonic())
        written_at = datetime.fromtimestamp(now, UTC)
        await self._cass.execute(
            self._record, (intent.bucket, intent.shard, intent.intent_id, topic, key, payload, written_at)
        )
        return intent

    async def forget(self, bucket: int, shard: int, intent_id: uuid.UUID) -> None:
        await self._cass.execute(self._forget, (bucket, shard, intent_id))

    async def pages(self, bucket: int, shard: int) -> AsyncIterator[list]:
        """The records of one partition, a page (one round trip) at a time."""
        async for _, rows in self._cass.scan(self._list, OUTBOX_PAGE, (bucket, shard)):
            yield rows

    async def settled_bucket(self) -> int | None:
        row = await self._cass.one(self._settled)
        return row.settled_bucket if row else None

    async def mark_settled(self, bucket: int) -> None:
        await self._cass.execute(self._mark_settled, (bucket,))


def bucket_at(unix_s: float) -> int:
    return int(unix_s) // BUCKET_S
