"""Dead letters: the events an agent could not decode or apply, set aside on `<topic>.dead` so that their
partition moves on.

A dead letter is the event's message as the agent read it, key and value bytes unchanged, with headers
saying where it was read and why it was set aside:

- `photos-dead-topic`, `photos-dead-partition`, `photos-dead-offset`: where the event was read;
- `photos-dead-agent`: the agent that gave up on it (streams/batches.py);
- `photos-dead-attempts`: how many times it was applied on its own (0: it could not be decoded);
- `photos-dead-error`: the last error, and `photos-dead-at-ms` when it was set aside.

Several agents read some topics: an event none of them can apply is dead-lettered by each.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from app.events import DEAD_LETTER_PARTITIONS, dead_letter_topic
from app.settings import Settings
from streams.metrics import DEAD_LETTERS
from streams.retry import until_ready

log = logging.getLogger(__name__)

HEADER = "photos-dead-"
MAX_ERROR_CHARS = 1000


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
