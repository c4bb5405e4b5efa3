"""What an agent acknowledges and what it dead-letters, with faust's own stream machinery and no Kafka:
`each_batch` reads an in-memory channel, `Stream.ack` (what tells faust an offset may be committed) is
recorded, and so are the dead letters.

tests/integration/test_stream_redelivery.py and test_dead_letters.py show the same against Kafka: the
offsets committed, what the next consumer of the group reads, the dead-letter topic and its replay.
"""

from __future__ import annotations

import asyncio

import faust
import pytest
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import InvalidRequest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.errors import Unavailable
from app.events import CommentChanged, LikeChanged
from app.settings import Settings
from streams import retry
from streams.batches import Undecodable, each_batch
from streams.retry import is_transient
from tests.support.polling import eventually


def like(actor_id: int) -> bytes:
    """A like event's bytes, as the API publishes them."""
    return LikeChanged(event_id=f"e{actor_id}", actor_id=actor_id, at_ms=0, post_id=100 + actor_id,
                       post_author_id=1, bucket=0, liked=True).dumps()


def comment(actor_id: int) -> bytes:
    return CommentChanged(event_id="c", actor_id=actor_id, at_ms=0, post_id=1, post_author_id=1, comment_id=7,
                          parent_id=None, parent_author_id=None, mentions=[], created=True).dumps()


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, int, BaseException]] = []

    async def send(self, event, attempts: int, error: BaseException) -> None:
        self.sent.append((event.message.value, attempts, error))


class Probe:
    """A faust stream over an in-memory channel, recording the events acknowledged on it and dead-lettered."""

    def __init__(self) -> None:
        # never started: the broker is only named (the stream needs a transport to look topics up)
        self.app = faust.App("acks-probe", broker="kafka://127.0.0.1:1", web_enabled=False, autodiscover=False)
        self.app.flow_control.resume()
        self.app.consumer_generation_id = None  # a channel's messages carry no consumer generation
        self.channel = self.app.channel()
        self.stream = self.channel.stream()
        self.acked: list[bytes] = []
        self.stream.ack = self._ack  # Stream.ack: what take() and the agents call to acknowledge an event
        self.dead_letters = RecordingDeadLetters()
        self.agent: asyncio.Task | None = None

    async def _ack(self, event) -> bool:
        self.acked.append(event.message.value)
        return True

    def run(self, apply, settings: Settings | None = None, size: int = 3, value_type=LikeChanged) -> None:
        self.agent = asyncio.create_task(
            each_batch(self.stream, "probe", apply, size=size, within=1.0, settings=settings or Settings(),
                       value_type=value_type, dead_letters=self.dead_letters)
        )

    async def send(self, *values: bytes) -> None:
        for value in values:
            await self.channel.send(value=value)

    async def acknowledged(self, count: int) -> list[bytes]:
        return await eventually(lambda: asyncio.sleep(0, list(self.acked)), lambda acked: len(acked) >= count,
                                timeout=10)

    async def close(self) -> None:
        if self.agent is not None:
            self.agent.cancel()
        await self.stream.stop()  # as a stopping worker does: closes the batch generators it left open


@pytest.fixture
async def probe():
    p = Probe()
    await p.stream.start()
    yield p
    await p.close()


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(retry, "FIRST_DELAY_S", 0.001)


def actors(batch) -> list[int]:
    return [event.actor_id for event in batch]


async def test_a_batch_cancelled_mid_retry_is_never_acknowledged(probe):
    attempts = []

    async def cassandra_down(batch):
        attempts.append(actors(batch))
        raise ConnectionError("NoHostAvailable")

    probe.run(cassandra_down)
    await probe.send(like(1), like(2), like(3))
    await eventually(lambda: asyncio.sleep(0, len(attempts)), lambda n: n >= 2, timeout=10)  # retrying
    probe.agent.cancel()  # a worker stopping or restarting its agents
    with pytest.raises(asyncio.CancelledError):
        await probe.agent
    await probe.close()
    assert attempts[0] == [1, 2, 3]
    assert probe.acked == []


async def test_events_that_arrive_after_the_agent_ended_are_not_acknowledged(probe, monkeypatch):
    """Until faust restarts a cancelled agent its stream still drains the channel; what it drains must stay
    unacknowledged (faust's pure-Python iterator, whose acknowledgements can be seen: Event.ack)."""
    monkeypatch.setattr(faust.streams, "_CStreamIterator", None)
    by_faust: list[bytes] = []
    ack = faust.Event.ack
    monkeypatch.setattr(faust.Event, "ack", lambda event: by_faust.append(event.message.value) or ack(event))
    stream = probe.channel.stream()  # iterated with the iterator chosen now
    stream.ack = probe.stream.ack
    await stream.start()

    async def apply(batch):
        pass

    agent = asyncio.create_task(each_batch(stream, "probe", apply, size=1, within=1.0, settings=Settings(),
                                           value_type=LikeChanged, dead_letters=probe.dead_letters))
    await probe.send(like(1))
    await probe.acknowledged(1)
    agent.cancel()
    with pytest.raises(asyncio.CancelledError):
        await agent
    await probe.send(like(2), like(3), like(4))
    await eventually(lambda: asyncio.sleep(0, stream.events_total), lambda n: n >= 4, timeout=10)  # drained
    await stream.stop()
    assert by_faust == [] and probe.acked == [like(1)]


async def test_a_batch_is_acknowledged_once_applied(probe):
    applied, acked_while_applying = [], []

    async def apply(batch):
        acked_while_applying.append(list(probe.acked))
        applied.append(actors(batch))

    probe.run(apply)
    await probe.send(like(1), like(2), like(3))
    assert await probe.acknowledged(3) == [like(1), like(2), like(3)]
    assert applied == [[1, 2, 3]] and acked_while_applying == [[]]
    assert probe.dead_letters.sent == []


async def test_an_outage_is_retried_past_the_attempt_limit_and_nothing_is_dead_lettered(probe, quick_retries):
    failures = [NoHostAvailable("down", {}), RedisConnectionError("refused"), Unavailable("kafka"), OSError()] * 3
    applied = []

    async def apply(batch):
        if failures:
            raise failures.pop()
        applied.append(actors(batch))

    probe.run(apply, Settings(streams_max_attempts=2))
    await probe.send(like(1), like(2), like(3))
    await probe.acknowledged(3)
    assert applied == [[1, 2, 3]] and probe.dead_letters.sent == []


async def test_an_event_that_always_fails_is_dead_lettered_and_its_partition_moves_on(probe, quick_retries):
    tried = []

    async def apply(batch):
        tried.append(actors(batch))
        if 2 in actors(batch):
            raise InvalidRequest("the event names a column that does not exist")

    probe.run(apply, Settings(streams_max_attempts=3))
    await probe.send(like(1), like(2), like(3), like(4))
    assert await probe.acknowledged(4) == [like(1), like(2), like(3), like(4)]
    # the batch three times, then its events one at a time: the failing one three times; then the next batch
    assert tried == [[1, 2, 3]] * 3 + [[1], [2], [2], [2], [3], [4]]
    [(value, attempts, error)] = probe.dead_letters.sent
    assert value == like(2) and attempts == 3 and isinstance(error, InvalidRequest)


async def test_an_agent_can_have_its_own_attempt_limit(probe, quick_retries):
    tried = []

    async def apply(batch):
        tried.append(actors(batch))
        raise KeyError("always")

    probe.run(apply, Settings(streams_max_attempts=5, streams_max_attempts_by_agent=("other=9", "probe=2")), size=1)
    await probe.send(like(1))
    await probe.acknowledged(1)
    assert tried == [[1], [1]]
    assert [(value, attempts) for value, attempts, _ in probe.dead_letters.sent] == [(like(1), 2)]


async def test_an_event_that_cannot_be_decoded_is_dead_lettered_at_once_and_the_others_applied(probe):
    applied = []

    async def apply(batch):
        applied.append(actors(batch))

    probe.run(apply, size=4)
    await probe.send(like(1), b"{not json", comment(5), like(2))
    assert await probe.acknowledged(4) == [like(1), b"{not json", comment(5), like(2)]
    assert applied == [[1, 2]]
    # bad JSON, and a comment where likes are read
    assert [(value, attempts) for value, attempts, _ in probe.dead_letters.sent] == [(b"{not json", 0), (comment(5), 0)]


async def test_a_topic_of_several_record_types_decodes_each_by_the_name_it_carries(probe):
    applied = []

    async def apply(batch):
        applied.append([type(event).__name__ for event in batch])

    probe.run(apply, size=3, value_type=None)
    await probe.send(like(1), b'{"actor_id": 2}', comment(3))
    await probe.acknowledged(3)
    assert applied == [["LikeChanged", "CommentChanged"]]
    [(value, attempts, error)] = probe.dead_letters.sent
    assert value == b'{"actor_id": 2}' and attempts == 0 and isinstance(error, Undecodable)  # JSON, but no event


@pytest.mark.parametrize("error, transient", [
    (NoHostAvailable("down", {}), True),
    (RedisConnectionError("refused"), True),
    (Unavailable("the event log (Kafka) is unavailable"), True),
    (ConnectionRefusedError(), True),
    (TimeoutError(), True),
    (InvalidRequest("unknown column"), False),
    (KeyError("actor_id"), False),
    (ValueError("bad"), False),
])
def test_outages_are_told_from_failures_that_would_repeat(error, transient):
    assert is_transient(error) is transient


def test_an_error_raised_from_an_outage_is_an_outage():
    try:
        try:
            raise NoHostAvailable("down", {})
        except NoHostAvailable as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
