"""What an agent acknowledges, with faust's own stream machinery and no Kafka: `each_batch` reads an
in-memory channel, and `Stream.ack` (what tells faust an offset may be committed) is recorded.

tests/integration/test_stream_redelivery.py shows the same against Kafka: the offsets committed, and
the events the next consumer of the group reads.
"""

from __future__ import annotations

import asyncio

import faust
import pytest

from streams.batches import each_batch
from tests.support.polling import eventually


class Probe:
    """A faust stream over an in-memory channel, recording the values of the events acknowledged on it."""

    def __init__(self) -> None:
        # never started: the broker is only named (the stream needs a transport to look topics up)
        self.app = faust.App("acks-probe", broker="kafka://127.0.0.1:1", web_enabled=False, autodiscover=False)
        self.app.flow_control.resume()
        self.app.consumer_generation_id = None  # a channel's messages carry no consumer generation
        self.channel = self.app.channel()
        self.stream = self.channel.stream()
        self.acked: list = []
        self.stream.ack = self._ack  # Stream.ack: what take() and the agents call to acknowledge an event

    async def _ack(self, event) -> bool:
        self.acked.append(event.value)
        return True

    async def send(self, *values) -> None:
        for value in values:
            await self.channel.send(value=value)

    async def close(self) -> None:
        await self.stream.stop()  # as a stopping worker does: closes the batch generators it left open


@pytest.fixture
async def probe():
    p = Probe()
    await p.stream.start()
    yield p
    await p.close()


async def test_a_batch_cancelled_mid_retry_is_never_acknowledged(probe):
    attempts = []

    async def cassandra_down(batch):
        attempts.append(list(batch))
        raise ConnectionError("NoHostAvailable")

    agent = asyncio.create_task(each_batch(probe.stream, "probe", cassandra_down, size=3, within=1.0))
    await probe.send(1, 2, 3)
    await eventually(lambda: asyncio.sleep(0, len(attempts)), lambda n: n >= 2, timeout=10)  # retrying
    agent.cancel()  # a worker stopping or restarting its agents
    with pytest.raises(asyncio.CancelledError):
        await agent
    await probe.close()
    assert attempts[0] == [1, 2, 3]
    assert probe.acked == []


async def test_a_batch_is_acknowledged_once_applied(probe):
    applied, acked_while_applying = [], []

    async def apply(batch):
        acked_while_applying.append(list(probe.acked))
        applied.append(list(batch))

    agent = asyncio.create_task(each_batch(probe.stream, "probe", apply, size=3, within=1.0))
    try:
        await probe.send(1, 2, 3)
        await eventually(lambda: asyncio.sleep(0, list(probe.acked)), lambda acked: acked == [1, 2, 3], timeout=10)
    finally:
        agent.cancel()
    assert applied == [[1, 2, 3]] and acked_while_applying == [[]]
