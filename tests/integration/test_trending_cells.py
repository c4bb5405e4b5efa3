"""Trending state in real Redis: idempotent adds, exact deletes, merged across writers, ranked."""

from __future__ import annotations

import uuid

from app.storage.trending import TrendingCells
from app.trending.scoring import TrendingParams, rank

PARAMS = TrendingParams(baseline_slots=24, min_authors=3)
NOW = 20_000_000  # a slot number: the test's clock


def mine(trends, suffix: str):
    return [t for t in trends if t.tag.endswith(suffix)]


async def test_two_writers_merge_redelivery_is_idempotent_and_deletes_subtract(redis_client, settings) -> None:
    suffix = uuid.uuid4().hex[:10]
    steady, burst, spam = f"steady{suffix}", f"burst{suffix}", f"spam{suffix}"
    worker_a = TrendingCells(redis_client, settings.cassandra_keyspace, ttl_s=600)
    worker_b = TrendingCells(redis_client, settings.cassandra_keyspace, ttl_s=600)

    steady_events = [(steady, s, 1_000 + a, s * 100 + a) for s in range(NOW - 35, NOW + 1) for a in range(10)]
    burst_events = [(burst, NOW - 1, 5_000 + a, 9_000_000 + a) for a in range(20)]
    spam_events = [(spam, s, 42, 8_000_000 + s * 1_000 + i) for s in range(NOW - 11, NOW + 1) for i in range(50)]
    # one tag's events arrive on different partitions/workers; the first half is redelivered
    await worker_a.apply(steady_events[::2] + burst_events[:10] + spam_events, [])
    await worker_b.apply(steady_events[1::2] + burst_events[10:] + burst_events[:10], [])

    trends = mine(rank(await worker_a.load(NOW, 12, PARAMS.baseline_slots), NOW, 12, PARAMS), suffix)
    assert [t.tag for t in trends] == [burst, steady]  # spam (one account) is not ranked
    assert trends[0].authors == 20 and trends[0].posts == 20
    assert trends[1].authors == 10 and abs(trends[1].score) < 1.0

    await worker_b.apply([], burst_events[:18])  # 18 of the burst's posts are deleted
    trends = mine(rank(await worker_a.load(NOW, 12, PARAMS.baseline_slots), NOW, 12, PARAMS), suffix)
    assert [t.tag for t in trends] == [steady]  # 2 authors left: below min_authors
