"""The outbox: no follow, unfollow, comment or story view whose row was written stays out of the derived data.

A follow or comment writes its row, then publishes the event the stream workers derive everything else
from. When that publish fails (Kafka refused it, or did not confirm it in time), and for a comment when
the take-back of the row fails too, or the API process dies in between, the row is there and no event
will ever come. So before its first write the request records the event it owes (`Outbox.record`) in the
`outbox` table, and clears the record once the event is out (`Outbox.clear`). The reconciler, run by a
stream worker every outbox_sweep_interval_s (streams/outbox.py), publishes every record older than
outbox_grace_s and then deletes it.

What a record holds is an event that is right to publish at any time, however often:
- a follow or unfollow: FollowChanged with `recheck`: the follow agent settles the mirror, the counts, the
  feed, the tray and the notification from the edge as it is then (read at SERIAL), whatever happened since;
- a comment: CommentChanged with `created=False`: the comment agent marks the row deleted if it exists and
  counts it out. A comment is answered 201 only once its record is cleared, within half the grace period
  of writing it (`Outbox.clear` raises otherwise), so a record the reconciler finds belongs to a comment
  whose client got no 201, and the comment is taken back, as the 503 said;
- a story view: StoryViewed with `recheck`: the view worker counts the viewer if the view's claim in
  `story_views` was made (the record is written before the claim, so it may have failed first).
The agents apply both idempotently, so a record published twice (by two reconcilers, or by a request that
published and then failed to clear it) changes nothing more. Likes need no record: the request publishes
before it writes, and the like worker writes the edge from the event (docs/likes.md). Uploads have theirs
in `media_sweep`, finished by the media sweeper (app/posts/sweeper.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.events import Event, EventPublisher
from app.storage.outbox import LOOKBACK_BUCKETS, OUTBOX_SHARDS, Intent, OutboxTable, bucket_at

log = logging.getLogger(__name__)

FIRST_RUN_BUCKETS = 30  # a reconciler that finds no progress row starts 5 minutes back (deploy workers first)
MAX_BUCKETS_PER_RUN = 360  # an hour of buckets per run at most: a reconciler catching up goes on next run
PARTITIONS_IN_FLIGHT = 16


class ClearedTooLate(Exception):
    """The record was not cleared within half the grace period: the reconciler may be publishing it."""


@dataclass
class Outbox:
    """The API's side: record an event before the write that owes it, clear it once it is published."""

    table: OutboxTable
    grace_s: float

    async def record(self, suffix: str, key: int, event: Event) -> Intent:
        return await self.table.record(suffix, key, event.dumps())

    async def clear(self, intent: Intent) -> None:
        """Delete the record. ClearedTooLate, leaving the record, once half the grace period has gone by
        since it was written: from then on a reconciler (whose clock may be ahead of this one) may read it,
        so the request must answer as if the event was never published."""
        if time.monotonic() - intent.written_monotonic >= self.grace_s / 2:
            raise ClearedTooLate(f"outbox record {intent.intent_id} is {self.grace_s / 2:.0f} s old or more")
        await self.table.forget(intent.bucket, intent.shard, intent.intent_id)

    async def clear_best_effort(self, intent: Intent | None, what: str) -> None:
        """Delete a record whose event is out, for writes whose record is right to publish again anyway
        (a follow's recheck, a comment's deletion): if this fails, the reconciler publishes it once more."""
        if intent is None:
            return
        try:
            await self.table.forget(intent.bucket, intent.shard, intent.intent_id)
        except Exception as exc:  # a Cassandra blip: the record only costs an idempotent event later
            log.warning("%s: outbox record left for the reconciler (%r)", what, exc)


@dataclass
class ReconcileReport:
    buckets: int = 0
    published: int = 0


class Reconciler:
    """Publishes the outbox records older than the grace period, then deletes them.

    Each bucket is read once whole after its last second is older than the grace period, then recorded in
    `outbox_progress` and never read again; a run whose publish fails (Kafka down) stops there and the next
    run starts from that bucket. Several reconcilers may run at once: a record two of them read is
    published twice, which the agents apply as once. `grace_s` must be at least the API's outbox_grace_s:
    a shorter one could take back a comment still on its way to its 201 (tests use 0 with nothing in flight)."""

    def __init__(self, table: OutboxTable, events: EventPublisher, grace_s: float,
                 on_published: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock
        self._events = events
        self._grace_s = grace_s
        self._on_published = on_published  # called with the topic suffix of each record published (metrics)
        self._slots = asyncio.Semaphore(PARTITIONS_IN_FLIGHT)

    async def run(self) -> ReconcileReport:
        report = ReconcileReport()
        last = bucket_at(self._clock() - self._grace_s) - 1  # the newest bucket wholly older than the grace period
        settled = await self._table.settled_bucket()
        first = last - FIRST_RUN_BUCKETS + 1 if settled is None else settled + 1
        first = max(first, last - LOOKBACK_BUCKETS + 1)
        for bucket in range(first, min(last, first + MAX_BUCKETS_PER_RUN - 1) + 1):
            async with asyncio.TaskGroup() as group:  # the first failure cancels the bucket's other reads
                for shard in range(OUTBOX_SHARDS):
                    group.create_task(self._settle_partition(bucket, shard, report))
            await self._table.mark_settled(bucket)
            report.buckets += 1
        if report.published:
            log.info("outbox: %d events published for requests that did not publish them", report.published)
        return report

    async def _settle_partition(self, bucket: int, shard: int, report: ReconcileReport) -> None:
        async with self._slots:
            async for rows in self._table.pages(bucket, shard):
                for row in rows:
                    await self._events.publish_encoded(row.topic, row.event_key, row.payload)
                    await self._table.forget(bucket, shard, row.intent_id)
                    report.published += 1
                    if self._on_published is not None:
                        self._on_published(row.topic)

