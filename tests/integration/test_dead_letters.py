"""Against Kafka: an event that fails on every attempt, and one that cannot be decoded, go to the dead-letter
topic with a metric and a log line, their partition moves on, and `photos-replay-dead` sends them back.

The worker is a faust app in this process (tests/support/kafka_scratch.py) reading through
`streams.batches.each_batch` as every agent does; the replay is the command, run as a process.
"""

from __future__ import annotations

import logging

import pytest
from cassandra.protocol import InvalidRequest
from prometheus_client import REGISTRY

from tests.support.kafka_scratch import Scratch, like, replay_dead
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

GARBAGE = (b"9", b"{not json")


def replay(scratch: Scratch, *args: str) -> str:
    return replay_dead(scratch.env(), "likes", *args)


def dead_letters_counted(scratch: Scratch) -> float:
    return REGISTRY.get_sample_value("photos_stream_dead_letters_total",
                                     {"agent": "probe", "topic": scratch.topic}) or 0.0


async def test_events_that_cannot_be_applied_are_dead_lettered_and_replayed(settings, caplog):
    caplog.set_level(logging.ERROR, logger="streams.dead_letters")
    applied: list[int] = []
    poisoned = {2}

    async def apply(batch) -> None:
        if poisoned & {event.actor_id for event in batch}:
            raise InvalidRequest("the event names a column that does not exist")  # fails every time
        applied.extend(event.actor_id for event in batch)

    async with Scratch(settings, "deadletters", streams_max_attempts=2) as scratch:
        await scratch.produce(like(1), like(2), GARBAGE, like(3))
        app, _ = scratch.worker(apply, size=4)
        await app.start()
        try:
            # the partition moves on: everything is committed, the two that could not be applied set aside
            await eventually(scratch.committed, lambda offset: offset == 4, timeout=60)
        finally:
            await app.stop()
        assert applied == [1, 3]

        letters = await scratch.read(scratch.dead_topic, 2, timeout=20)
        # the undecodable one is set aside as the batch is decoded, the poisoned one after its attempts
        assert [(letter.key, letter.value) for letter in letters] == [GARBAGE, like(2)]
        assert dict(letters[0].headers)["photos-dead-attempts"] == b"0"
        poison = dict(letters[1].headers)
        assert poison["photos-dead-topic"] == scratch.topic.encode()
        assert (poison["photos-dead-partition"], poison["photos-dead-offset"]) == (b"0", b"1")
        assert (poison["photos-dead-agent"], poison["photos-dead-attempts"]) == (b"probe", b"2")
        assert b"InvalidRequest" in poison["photos-dead-error"]
        assert dead_letters_counted(scratch) == 2
        logged = [record.getMessage() for record in caplog.records]
        assert any(f"gave up on {scratch.topic} partition 0 offset 1 (key 102) after 2 attempts" in line
                   for line in logged), logged

        assert "2 dead letters not replayed yet (2 events)" in replay(scratch, "--list")
        assert "replayed 2 events from 2 dead letters" in replay(scratch)
        assert "replayed 0 events from 0 dead letters" in replay(scratch)  # each letter is replayed once
        replayed = (await scratch.read(scratch.topic, 6, timeout=20))[4:]
        assert [(record.key, record.value) for record in replayed] == [GARBAGE, like(2)]
        assert dict(replayed[1].headers)["photos-replayed-from"] == f"{scratch.dead_topic}@1".encode()

        # fixed: the next worker of the group applies the replayed event; the garbage is set aside again
        poisoned.clear()
        app, _ = scratch.worker(apply, size=4)
        await app.start()
        try:
            await eventually(scratch.committed, lambda offset: offset == 6, timeout=60)
        finally:
            await app.stop()
        assert applied == [1, 3, 2]
        assert "1 dead letters not replayed yet (1 events)" in replay(scratch, "--list")
