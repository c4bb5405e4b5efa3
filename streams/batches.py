"""How every agent reads its topic: a batch at a time, each event acknowledged only once it is applied or
dead-lettered.

`each_batch` is the one loop the agents run, so what a batch's events go through before faust may
commit their offsets is decided here and nowhere else.

Acknowledging is what lets faust commit an offset (its consumer commits up to the first event not
acknowledged). faust's `stream.take()` acknowledges a batch in a `finally` around its `yield`: when
the loop body returns, but also when the generator is closed because the body raised, or was
cancelled while `until_done` retried (a worker stopping or restarting its agents while Cassandra is
down) — the generator's `finally` then acknowledged events whose effects were never written, and the
next commit skipped them for good. So the batches come from `noack_take()`, which acknowledges
nothing, and each event is acknowledged here once its batch is settled: a batch cut short is never
acknowledged, its offsets are not committed, and the next consumer of the partition reads it again.

Settling a batch:
- Each event is decoded here, not by faust (the agents' topics hand over the bytes, `event_topic`):
  faust acknowledges an event it cannot decode and throws the error into the stream, which ends the
  agent's reading. One that cannot be decoded, or is not an event of the agent's type, is dead-lettered.
- The batch is applied until it succeeds: a dependency's outage (streams/retry.py `is_transient`) is
  retried for as long as it lasts, as before. Any other failure counts, and at the agent's attempt
  limit (`Settings.streams_attempts`) the events are applied one at a time, each with the same limit;
  an event that still fails is dead-lettered (streams/dead_letters.py: `<topic>.dead`, the metric
  photos_stream_dead_letters_total, a log line naming topic, partition, offset and key) and the partition
  moves on. `photos-replay-dead` sends dead letters back to their topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from app.events import Event, topic_name
from app.settings import Settings
from streams.dead_letters import DeadLetters
from streams.metrics import batch_timer
from streams.retry import GaveUp, until_done

log = logging.getLogger(__name__)

Apply = Callable[[list[Any]], Awaitable[None]]


class Undecodable(ValueError):
    """An event's bytes are not an event the agent reads."""


def event_topic(app: faust.App, settings: Settings, *suffixes: str) -> faust.TopicT:
    """The topics of `suffixes` as an agent reads them: each event's bytes, which `each_batch` decodes."""
    return app.topic(*(topic_name(settings, suffix) for suffix in suffixes), value_serializer="raw")


async def each_batch(
    stream: Any, agent: str, apply: Apply, *, size: int, within: float, settings: Settings,
    value_type: type[Event] | None = None, dead_letters: DeadLetters | None = None,
) -> None:
    """Take up to `size` events (waiting at most `within` seconds for them), settle them, then acknowledge
    them, batch after batch. `apply` gets the decoded events: of `value_type`, or any `Event` when None."""
    settler = Settler(stream.app, agent, apply, settings.streams_attempts(agent), value_type,
                      dead_letters or DeadLetters(stream.app, settings, agent))
    # noack_take() turns the stream's own acknowledgements off while it runs and back on when it ends; they
    # must stay off: once this loop ends (the agent cancelled, until faust restarts it) the stream still
    # drains its channel, and would acknowledge events no agent took
    stream.enable_acks = False
    async for events in stream.noack_take(size, within=within):
        await settler.settle(events)
        for event in events:
            await stream.ack(event)


class Settler:
    """Applies or dead-letters every event of a batch; returns when each is one or the other."""

    def __init__(self, app: faust.App, agent: str, apply: Apply, attempts: int, value_type: type[Event] | None,
                 dead_letters: DeadLetters) -> None:
        self.serializers = app.serializers
        self.agent = agent
        self.apply = apply
        self.attempts = attempts
        self.value_type = value_type
        self.dead_letters = dead_letters
        self.timer = batch_timer(agent)

    async def settle(self, events: list[Any]) -> None:
        started = time.perf_counter()
        decoded: list[tuple[Any, Event]] = []
        for event in events:
            try:
                decoded.append((event, self.decode(event.message.value)))
            except Exception as exc:  # faust's ValueDecodeError, or Undecodable
                await self.dead_letters.send(event, attempts=0, error=exc)
        if decoded:
            await self._apply(decoded)
        self.timer.observe(time.perf_counter() - started)

    def decode(self, raw: bytes | None) -> Event:
        value = self.serializers.loads_value(self.value_type, raw, serializer="json")
        wanted = self.value_type or Event
        if not isinstance(value, wanted):
            raise Undecodable(f"a {type(value).__name__}, not a {wanted.__name__}")
        return value

    async def _apply(self, decoded: list[tuple[Any, Event]]) -> None:
        values = [value for _, value in decoded]
        try:
            await until_done(self.agent, lambda: self.apply(values), give_up_after=self.attempts)
            return
        except GaveUp as failed:
            if len(decoded) == 1:
                await self.dead_letters.send(decoded[0][0], attempts=failed.failures, error=failed.error)
                return
            log.warning("%s: a batch of %d events failed %d times (%r); applying its events one at a time",
                        self.agent, len(decoded), failed.failures, failed.error)
        for event, value in decoded:
            try:
                await until_done(self.agent, lambda: self.apply([value]), give_up_after=self.attempts)  # noqa: B023
            except GaveUp as failed:
                await self.dead_letters.send(event, attempts=failed.failures, error=failed.error)
