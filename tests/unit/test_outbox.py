"""The reconciler's walk over `outbox` (app/outbox.py), against a fake table and event log: which buckets a
run reads, what it publishes, and where a run that failed leaves the next one."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from app.errors import Unavailable
from app.outbox import FIRST_RUN_BUCKETS, MAX_BUCKETS_PER_RUN, Reconciler
from app.storage.outbox import BUCKET_S, OUTBOX_SHARDS

NOW = 1_800_000_005.0  # the middle of bucket 180_000_000
GRACE_S = 60.0
LAST_WHOLE = int(NOW - GRACE_S) // BUCKET_S - 1  # the newest bucket wholly older than the grace period


class FakeOutboxTable:
    def __init__(self, settled: int | None = None) -> None:
        self.settled = settled
        self.records: dict[tuple[int, int], list] = {}
        self.read: list[int] = []  # buckets whose partitions were read (once per partition)
        self.marked: list[int] = []

    def add(self, bucket: int, shard: int, topic: str, key: int) -> None:
        self.records.setdefault((bucket, shard), []).append(
            SimpleNamespace(intent_id=uuid.uuid4(), topic=topic, event_key=key, payload=f"{topic}:{key}".encode())
        )

    async def pages(self, bucket: int, shard: int):
        self.read.append(bucket)
        rows = list(self.records.get((bucket, shard), []))
        if rows:
            yield rows

    async def forget(self, bucket: int, shard: int, intent_id) -> None:
        self.records[bucket, shard] = [r for r in self.records[bucket, shard] if r.intent_id != intent_id]

    async def settled_bucket(self) -> int | None:
        return self.settled

    async def mark_settled(self, bucket: int) -> None:
        self.marked.append(bucket)
        self.settled = bucket


class FakeEvents:
    def __init__(self, refuse_after: int | None = None) -> None:
        self.sent: list[tuple[str, int, bytes]] = []
        self.refuse_after = refuse_after

    async def publish_encoded(self, suffix: str, key: int, payload: bytes) -> None:
        if self.refuse_after is not None and len(self.sent) >= self.refuse_after:
            raise Unavailable("the event log (Kafka) did not accept the event")
        self.sent.append((suffix, key, payload))


def reconciler(table: FakeOutboxTable, events: FakeEvents, published: list[str] | None = None) -> Reconciler:
    return Reconciler(table, events, GRACE_S, on_published=None if published is None else published.append,
                      clock=lambda: NOW)


async def test_a_first_run_reads_a_bounded_while_back_up_to_the_last_bucket_older_than_the_grace_period():
    table = FakeOutboxTable()
    table.add(LAST_WHOLE, 3, "follows", 42)
    table.add(LAST_WHOLE + 1, 3, "comments", 7)  # not wholly past the grace period yet: left for a later run
    published: list[str] = []
    report = await reconciler(table, FakeEvents(), published).run()
    assert table.marked == list(range(LAST_WHOLE - FIRST_RUN_BUCKETS + 1, LAST_WHOLE + 1))
    assert sorted(set(table.read)) == table.marked and len(table.read) == FIRST_RUN_BUCKETS * OUTBOX_SHARDS
    assert (report.buckets, report.published, published) == (FIRST_RUN_BUCKETS, 1, ["follows"])
    assert table.records[LAST_WHOLE, 3] == [] and len(table.records[LAST_WHOLE + 1, 3]) == 1


async def test_each_record_is_published_with_its_topic_and_key_then_deleted_and_the_next_run_reads_on():
    table = FakeOutboxTable(settled=LAST_WHOLE - 2)
    table.add(LAST_WHOLE - 1, 0, "follows", 1)
    table.add(LAST_WHOLE - 1, 63, "comments", 2)
    table.add(LAST_WHOLE, 5, "follows", 3)
    events = FakeEvents()
    await reconciler(table, events).run()
    assert sorted(events.sent) == [("comments", 2, b"comments:2"), ("follows", 1, b"follows:1"),
                                   ("follows", 3, b"follows:3")]
    assert all(rows == [] for rows in table.records.values())
    assert table.marked == [LAST_WHOLE - 1, LAST_WHOLE]
    table.read.clear()
    await reconciler(table, events).run()
    assert table.read == [] and len(events.sent) == 3  # nothing is read twice


async def test_a_run_whose_publish_fails_stops_in_that_bucket_and_the_next_run_starts_there():
    table = FakeOutboxTable(settled=LAST_WHOLE - 3)
    table.add(LAST_WHOLE - 2, 1, "follows", 1)
    table.add(LAST_WHOLE - 1, 1, "follows", 2)
    table.add(LAST_WHOLE - 1, 1, "follows", 3)
    with pytest.raises(ExceptionGroup):
        await reconciler(table, FakeEvents(refuse_after=2)).run()
    assert table.settled == LAST_WHOLE - 2  # the bucket that failed is not settled
    assert len(table.records[LAST_WHOLE - 1, 1]) == 1  # the one published was deleted, the other kept
    events = FakeEvents()
    await reconciler(table, events).run()
    assert [key for _, key, _ in events.sent] == [3] and table.settled == LAST_WHOLE


async def test_a_reconciler_far_behind_catches_up_at_most_an_hour_of_buckets_per_run():
    table = FakeOutboxTable(settled=LAST_WHOLE - 10 * MAX_BUCKETS_PER_RUN)
    report = await reconciler(table, FakeEvents()).run()
    assert report.buckets == MAX_BUCKETS_PER_RUN and table.settled == LAST_WHOLE - 9 * MAX_BUCKETS_PER_RUN
