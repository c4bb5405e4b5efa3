"""Dead letters: the events an agent could not decode or apply, set aside on `<topic>.dead` so that their
partition moves on, and `photos-replay-dead`, which sends them back to their topic.

A dead letter is the event's message as the agent read it, key and value bytes unchanged, with headers
saying where it was read and why it was set aside:

- `photos-dead-topic`, `photos-dead-partition`, `photos-dead-offset`: where the event was read;
- `photos-dead-agent`: the agent that gave up on it (streams/batches.py);
- `photos-dead-attempts`: how many times it was applied on its own (0: it could not be decoded);
- `photos-dead-error`: the last error, and `photos-dead-at-ms` when it was set aside.

Several agents read some topics: an event none of them can apply is dead-lettered by each, and replayed
once. A replayed event goes back to its topic with its key, so to the partition it came from, and every
agent of the topic reads it again: the agents' writes are idempotent (absolute counts, keyed rows), so the
agents that had applied it change nothing. `photos-replay-dead` remembers what it replayed in the
consumer group `<streams_app_id>-dead-replay`, so each letter is replayed once; an event that fails
again is dead-lettered again, as a new letter.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.client_security import kafka_options
from app.events import DEAD_LETTER_PARTITIONS, DEAD_LETTER_SUFFIX, TOPICS, dead_letter_topic, topic_name
from app.settings import Settings
from streams.metrics import DEAD_LETTERS
from streams.retry import until_ready

log = logging.getLogger(__name__)

HEADER = "photos-dead-"
REPLAYED_FROM = "photos-replayed-from"
MAX_ERROR_CHARS = 1000
REPLAY_GROUP_SUFFIX = "-dead-replay"


class DeadLetters:
    """Sends the events one agent gives up on to their topic's dead-letter topic, through the worker's producer."""

    def __init__(self, app: faust.App, settings: Settings, agent: str) -> None:
        self.app = app
        self.settings = settings
        self.agent = agent
        self._declared: set[str] = set()

    async def send(self, event: Any, attempts: int, error: BaseException) -> None:
        """Dead-letter `event` (a faust Event) and wait until Kafka has it; a Kafka outage is waited out."""
        message = event.message
        dead = dead_letter_topic(message.topic)
        headers = [
            (f"{HEADER}topic", message.topic.encode()),
            (f"{HEADER}partition", str(message.partition).encode()),
            (f"{HEADER}offset", str(message.offset).encode()),
            (f"{HEADER}agent", self.agent.encode()),
            (f"{HEADER}attempts", str(attempts).encode()),
            (f"{HEADER}error", repr(error)[:MAX_ERROR_CHARS].encode()),
            (f"{HEADER}at-ms", str(int(time.time() * 1000)).encode()),
        ]
        await until_ready(self.agent, lambda: self._send(dead, message.key, message.value, headers),
                          what=f"dead letter to {dead}")
        DEAD_LETTERS.labels(self.agent, message.topic).inc()
        log.error("%s: gave up on %s partition %d offset %d (key %s) after %d attempts (%r); dead-lettered to %s",
                  self.agent, message.topic, message.partition, message.offset, _text(message.key), attempts,
                  error, dead)

    async def _send(self, dead: str, key: bytes | None, value: bytes | None, headers: list) -> None:
        if dead not in self._declared:  # photos-migrate creates it; a system migrated before it existed gets it here
            topic = self.app.topic(dead, partitions=DEAD_LETTER_PARTITIONS,
                                   replicas=self.settings.kafka_replication_factor)
            await topic.maybe_declare()
            self._declared.add(dead)
        await self.app.producer.send_and_wait(dead, key, value, None, None, headers)


def _text(raw: bytes | None) -> str:
    return "none" if raw is None else raw.decode(errors="replace")


@dataclass(frozen=True)
class Letter:
    """One dead letter: the event's key and value, where it was read, and why it was set aside."""

    dead_topic: str
    dead_offset: int
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    agent: str
    attempts: str
    error: str

    @classmethod
    def of(cls, record: Any) -> Letter:
        headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}

        def header(name: str, default: str) -> str:
            return headers.get(f"{HEADER}{name}", default)

        return cls(
            dead_topic=record.topic, dead_offset=record.offset,
            topic=header("topic", record.topic.removesuffix(DEAD_LETTER_SUFFIX)),
            partition=int(header("partition", "-1")), offset=int(header("offset", "-1")),
            key=record.key, value=record.value, agent=header("agent", "?"), attempts=header("attempts", "?"),
            error=header("error", ""),
        )

    @property
    def source(self) -> tuple[str, int, int]:
        """The event it holds; a letter without its headers only stands for itself."""
        if self.offset < 0:
            return self.dead_topic, -1, self.dead_offset
        return self.topic, self.partition, self.offset

    def describe(self) -> str:
        return (f"{self.topic} partition {self.partition} offset {self.offset} key {_text(self.key)}: "
                f"agent {self.agent}, {self.attempts} attempts, {self.error}")


async def read_letters(settings: Settings, suffixes: list[str], replay: bool) -> list[Letter]:
    """The dead letters of the topics of `suffixes` not replayed yet, up to the end of each dead-letter topic as
    it is now; with `replay`, each event is sent back to its topic once and the letters are marked replayed."""
    partitions = await dead_letter_partitions(settings, suffixes)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=f"{settings.streams_app_id}{REPLAY_GROUP_SUFFIX}",
        enable_auto_commit=False, auto_offset_reset="earliest", **kafka_options(settings),
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)  # letters dead-lettered while this runs wait for the next run
        letters: list[Letter] = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                records = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
                letters += [Letter.of(record) for record in records if record.offset < ends[tp]]
        if replay:
            await send_back(settings, letters)
            await consumer.commit({tp: ends[tp] for tp in partitions})
        return letters
    finally:
        await consumer.stop()


async def dead_letter_partitions(settings: Settings, suffixes: list[str]) -> list[TopicPartition]:
    """The partitions of the dead-letter topics of `suffixes` that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **kafka_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([dead_letter_topic(topic_name(settings, s)) for s in suffixes])
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition)
        for topic in described if topic["error_code"] == 0  # 3: no such topic (nothing was dead-lettered there)
        for partition in sorted(p["partition"] for p in topic["partitions"])
    ]


async def send_back(settings: Settings, letters: list[Letter]) -> int:
    """Send each event the letters hold to its topic, once (several agents may have dead-lettered one event);
    returns how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
                                **kafka_options(settings))
    await producer.start()
    sent: set[tuple[str, int, int]] = set()
    try:
        for letter in letters:
            if letter.source in sent:
                continue
            replayed_from = f"{letter.dead_topic}@{letter.dead_offset}".encode()
            await producer.send_and_wait(letter.topic, letter.value, key=letter.key,
                                         headers=[(REPLAYED_FROM, replayed_from)])
            sent.add(letter.source)
    finally:
        await producer.stop()
    return len(sent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="photos-replay-dead",
        description="Send the events the stream workers dead-lettered back to their topics (docs/reliability.md).",
    )
    parser.add_argument("topics", nargs="*", metavar="TOPIC",
                        help=f"topics by suffix ({', '.join(TOPICS)}); default: all of them")
    parser.add_argument("--list", action="store_true", help="show the letters not replayed yet; replay nothing")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    unknown = sorted(set(args.topics) - set(TOPICS))
    if unknown:
        parser.error(f"no such topic: {', '.join(unknown)} (choose from {', '.join(TOPICS)})")
    settings = Settings.from_env()
    letters = asyncio.run(read_letters(settings, args.topics or list(TOPICS), replay=not args.list))
    for letter in letters:
        print(letter.describe())
    events = len({letter.source for letter in letters})
    if args.list:
        print(f"{len(letters)} dead letters not replayed yet ({events} events)")
    else:
        print(f"replayed {events} events from {len(letters)} dead letters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
