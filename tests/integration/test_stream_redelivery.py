"""Against Kafka: an agent cancelled while it retries a batch (Cassandra down, the worker stopping) leaves the
batch's offsets uncommitted, and the next consumer of its group reads the events again.

The worker is a faust app in this process (tests/support/kafka_scratch.py), on a topic and consumer group of
this test's own, reading through `streams.batches.each_batch` as every agent does.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.kafka_scratch import Scratch, like
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

EVENTS = [like(n) for n in range(1, 6)]


def actors(batch) -> list[int]:
    return [event.actor_id for event in batch]


async def test_events_of_a_batch_cancelled_mid_retry_are_redelivered(settings):
    attempts: list[list[int]] = []

    async def cassandra_down(batch) -> None:
        attempts.append(actors(batch))
        raise ConnectionError("NoHostAvailable")  # a dependency's outage: retried for as long as it lasts

    async with Scratch(settings, "redelivery") as scratch:
        await scratch.produce(*EVENTS)
        app, probe = scratch.worker(cassandra_down, size=len(EVENTS))
        await app.start()
        try:
            await eventually(lambda: asyncio.sleep(0, len(attempts)), lambda n: n >= 2, timeout=60)  # retrying
            assert attempts[0] == [1, 2, 3, 4, 5]
            await probe.stop()  # what a stopping worker does to its agents: their tasks are cancelled
            await asyncio.sleep(0.5)  # the consumer commits what was acknowledged every 0.2 s
            await app.consumer.commit()
        finally:
            await app.stop()
        assert await scratch.committed() in (None, 0)
        redelivered = await scratch.read(scratch.topic, len(EVENTS), timeout=20, group=scratch.group)
        assert [(record.key, record.value) for record in redelivered] == EVENTS


async def test_an_applied_batch_is_committed(settings):
    applied: list[list[int]] = []

    async def apply(batch) -> None:
        applied.append(actors(batch))

    async with Scratch(settings, "committed") as scratch:
        await scratch.produce(*EVENTS)
        app, _ = scratch.worker(apply, size=len(EVENTS))
        await app.start()
        try:
            await eventually(scratch.committed, lambda offset: offset == len(EVENTS), timeout=60)
        finally:
            await app.stop()
        assert applied == [[1, 2, 3, 4, 5]]
        assert await scratch.read(scratch.topic, 1, timeout=3, group=scratch.group) == []
