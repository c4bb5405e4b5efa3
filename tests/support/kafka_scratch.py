"""Kafka topics and a consumer group of one test, and a faust worker on them in the test's own process.

The names are the run's test prefix plus the test's and a random part, so a test never reads another's events
nor commits in another's group; the topics are deleted afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from app.events import LikeChanged, dead_letter_topic, topic_name
from app.settings import REPO_ROOT, Settings
from streams.batches import each_batch, event_topic

SUFFIX = "likes"  # the topic the scratch worker reads, under the scratch prefix


class Scratch:
    """`<prefix><what>-<run>.likes` and its dead-letter topic, one partition each, and the group
    `<streams_app_id>-<what>-<run>`; `self.settings` names them (with `overrides` applied)."""

    def __init__(self, settings: Settings, what: str, **overrides) -> None:
        run = secrets.token_hex(4)
        self.settings = dataclasses.replace(
            settings, kafka_topic_prefix=f"{settings.kafka_topic_prefix}{what}-{run}.",
            streams_app_id=f"{settings.streams_app_id}-{what}-{run}", **overrides,
        )
        self.topic = topic_name(self.settings, SUFFIX)
        self.dead_topic = dead_letter_topic(self.topic)
        self.group = self.settings.streams_app_id
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)

    async def __aenter__(self) -> Scratch:
        await self.admin.start()
        await self.admin.create_topics(
            [NewTopic(name, num_partitions=1, replication_factor=1) for name in (self.topic, self.dead_topic)]
        )
        return self

    async def __aexit__(self, *exc) -> None:
        try:  # with the topic faust's partition assignor made for the group
            await self.admin.delete_topics([self.topic, self.dead_topic, f"{self.group}-__assignor-__leader"])
        except Exception:  # best effort: a leftover topic of a run is only clutter
            pass
        await self.admin.close()

    def env(self) -> dict[str, str]:
        """The environment of a command run on the scratch topics and group."""
        return {"PHOTOS_KAFKA_TOPIC_PREFIX": self.settings.kafka_topic_prefix,
                "PHOTOS_STREAMS_APP_ID": self.settings.streams_app_id}

    async def produce(self, *messages: tuple[bytes, bytes]) -> None:
        """Send (key, value) messages to the topic, in order."""
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in messages:
                await producer.send_and_wait(self.topic, value, key=key)
        finally:
            await producer.stop()

    async def committed(self) -> int | None:
        """The offset the group committed on the topic's partition (None: nothing committed)."""
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        meta = offsets.get(TopicPartition(self.topic, 0))
        return None if meta is None or meta.offset < 0 else meta.offset

    async def read(self, topic: str, count: int, timeout: float, group: str | None = None) -> list[ConsumerRecord]:
        return await read_topic(self.settings, topic, count, timeout, group)

    def worker(self, apply: Callable[[list], Awaitable[None]], size: int) -> tuple[faust.App, faust.types.AgentT]:
        """A faust app in this process whose one agent, "probe", reads the topic through `each_batch` as every
        agent does; start it with `await app.start()`, stop it with `await app.stop()`."""
        app = faust.App(
            self.group, broker=f"kafka://{self.settings.kafka_bootstrap}", store="memory://", web_enabled=False,
            autodiscover=False, topic_partitions=1, broker_commit_interval=0.2,
            stream_wait_empty=False,  # stop without waiting for a batch being retried
        )

        @app.agent(event_topic(app, self.settings, SUFFIX), name="probe")
        async def probe(stream) -> None:
            await each_batch(stream, "probe", apply, size=size, within=1.0, settings=self.settings,
                             value_type=LikeChanged)

        return app, probe


async def read_topic(settings: Settings, topic: str, count: int, timeout: float,
                     group: str | None = None) -> list[ConsumerRecord]:
    """Up to `count` records of `topic` read within `timeout`: from the start, or as a new consumer of `group`
    (from its committed offset)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    read: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(read) < count:
            batches = await consumer.getmany(timeout_ms=500)
            read += [record for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return read


async def delete_topics_of(settings: Settings) -> None:
    """Delete every topic under `settings`' prefix, and the one faust's partition assignor made for its group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(settings.kafka_topic_prefix)]
        await admin.delete_topics([*names, f"{settings.streams_app_id}-__assignor-__leader"])
    except Exception:  # best effort: a leftover topic of a run is only clutter
        pass
    finally:
        await admin.close()


def replay_dead(env: dict[str, str], *args: str) -> str:
    """`photos-replay-dead <args>` run as a process with `env` over the test environment; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.dead_letters", *args], cwd=REPO_ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def like(actor_id: int) -> tuple[bytes, bytes]:
    """A like event as the API publishes it: (key, value)."""
    event = LikeChanged(event_id=f"e{actor_id}", actor_id=actor_id, at_ms=0, post_id=100 + actor_id,
                        post_author_id=1, bucket=0, liked=True)
    return str(event.post_id).encode(), event.dumps()
