"""Against Kafka: an agent cancelled while it retries a batch (Cassandra down, the worker stopping) leaves the
batch's offsets uncommitted, and the next consumer of its group reads the events again.

The worker is a faust app in this process, on a topic and consumer group of this test's own (one partition),
reading through `streams.batches.each_batch` as every agent does.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.settings import Settings
from streams.batches import each_batch
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

EVENTS = [f"event-{n}".encode() for n in range(5)]


class Scratch:
    """A topic of one partition and a consumer group, named after this test run, removed afterwards."""

    def __init__(self, settings: Settings, what: str) -> None:
        run = secrets.token_hex(4)
        self.settings = settings
        self.topic = f"{settings.kafka_topic_prefix}{what}-{run}"
        self.group = f"{settings.streams_app_id}-{what}-{run}"
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)

    async def __aenter__(self) -> Scratch:
        await self.admin.start()
        await self.admin.create_topics([NewTopic(self.topic, num_partitions=1, replication_factor=1)])
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            # the topic, and the one faust's partition assignor made for the group
            await self.admin.delete_topics([self.topic, f"{self.group}-__assignor-__leader"])
        except Exception:  # best effort: a leftover topic of a run is only clutter
            pass
        await self.admin.close()

    async def produce(self, values: list[bytes]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(self.topic, value, key=b"k")
        finally:
            await producer.stop()

    async def committed(self) -> int | None:
        """The offset the group committed on the partition (None: nothing committed)."""
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        meta = offsets.get(TopicPartition(self.topic, 0))
        return None if meta is None or meta.offset < 0 else meta.offset

    async def next_consumer_reads(self, timeout: float) -> list[bytes]:
        """What a new consumer of the group reads within `timeout` (from the committed offset, or the start)."""
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.settings.kafka_bootstrap, group_id=self.group,
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        await consumer.start()
        read: list[bytes] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(read) < len(EVENTS):
                batches = await consumer.getmany(timeout_ms=500)
                read += [record.value for records in batches.values() for record in records]
        finally:
            await consumer.stop()
        return read


def worker(scratch: Scratch, apply) -> tuple[faust.App, faust.types.AgentT]:
    app = faust.App(
        scratch.group, broker=f"kafka://{scratch.settings.kafka_bootstrap}", store="memory://", web_enabled=False,
        autodiscover=False, topic_partitions=1, broker_commit_interval=0.2,
        stream_wait_empty=False,  # stop without waiting for the batch being retried: it never finishes here
    )
    topic = app.topic(scratch.topic, value_serializer="raw")

    @app.agent(topic, name="probe")
    async def probe(stream) -> None:
        await each_batch(stream, "probe", apply, size=len(EVENTS), within=1.0)

    return app, probe


async def test_events_of_a_batch_cancelled_mid_retry_are_redelivered(settings):
    attempts: list[list[bytes]] = []

    async def cassandra_down(batch: list[bytes]) -> None:
        attempts.append(batch)
        raise ConnectionError("NoHostAvailable")  # a dependency outage: retried for as long as it lasts

    async with Scratch(settings, "redelivery") as scratch:
        await scratch.produce(EVENTS)
        app, probe = worker(scratch, cassandra_down)
        await app.start()
        try:
            await eventually(lambda: asyncio.sleep(0, len(attempts)), lambda n: n >= 2, timeout=60)  # retrying
            assert attempts[0] == EVENTS
            await probe.stop()  # what a stopping worker does to its agents: their tasks are cancelled
            await asyncio.sleep(0.5)  # the consumer commits every 0.2 s whatever was acknowledged
            await app.consumer.commit()
        finally:
            await app.stop()
        assert await scratch.committed() in (None, 0)
        assert await scratch.next_consumer_reads(timeout=20) == EVENTS


async def test_an_applied_batch_is_committed(settings):
    applied: list[list[bytes]] = []

    async def apply(batch: list[bytes]) -> None:
        applied.append(batch)

    async with Scratch(settings, "committed") as scratch:
        await scratch.produce(EVENTS)
        app, _ = worker(scratch, apply)
        await app.start()
        try:
            await eventually(lambda: asyncio.sleep(0, applied), bool, timeout=60)
            await eventually(scratch.committed, lambda offset: offset == len(EVENTS), timeout=20)
        finally:
            await app.stop()
        assert applied == [EVENTS]
        assert await scratch.next_consumer_reads(timeout=3) == []
