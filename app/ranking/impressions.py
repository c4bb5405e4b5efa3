"""Logging what the ranked feed served (docs/ranking.md#the-ranking-log).

A sampled share of snapshots (settings.ranking_impression_sample, decided by the snapshot id so every page of
one snapshot is logged or none is) publishes one `FeedImpressions` event per page served: the posts, their
positions, the ranker and the features it saw. Publishing happens off the request, a bounded number at a
time; when Kafka is slow or away impressions are dropped and counted, never waited for (they are analytics,
not acknowledged writes).
"""

from __future__ import annotations

import asyncio
import logging
import zlib

from prometheus_client import Counter

from app.events import CommentsOpened, EventPublisher, FeedImpressions, new_event_fields
from app.ranking.features import FEATURE_VERSION, extract
from app.storage.feed_cache import Candidate

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64  # publishes waiting at once per process; beyond that impressions are dropped
SAMPLE_SCALE = 1_000_000

LOGGED = Counter("photos_ranking_events_total", "Ranking log events (impressions, comment opens) by outcome",
                 ["kind", "outcome"])


class ImpressionLog:
    def __init__(self, events: EventPublisher, sample: float, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._events = events
        self._threshold = round(sample * SAMPLE_SCALE)
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task] = set()

    def is_sampled(self, snapshot_id: int) -> bool:
        return zlib.crc32(snapshot_id.to_bytes(8, "big", signed=True)) % SAMPLE_SCALE < self._threshold

    def served(self, reader_id: int, snapshot_id: int, ranker: str, ranked: list[Candidate], ranked_at_ms: int,
               shown: list[Candidate]) -> None:
        """Log a page: `shown` are the posts served from `ranked` (the snapshot's whole order, best first)."""
        if not shown or not self.is_sampled(snapshot_id):
            return
        rows = dict(zip((c.post_id for c in ranked), extract(ranked, ranked_at_ms), strict=True))
        position = {c.post_id: i for i, c in enumerate(ranked)}
        event = FeedImpressions(
            **new_event_fields(reader_id), request_id=snapshot_id, ranker=ranker, feature_version=FEATURE_VERSION,
            positions=[position[c.post_id] for c in shown], post_ids=[c.post_id for c in shown],
            author_ids=[c.author_id for c in shown], features=[rows[c.post_id] for c in shown],
        )
        self._publish("impressions", reader_id, event)

    def comments_opened(self, reader_id: int, post_id: int, post_author_id: int) -> None:
        event = CommentsOpened(**new_event_fields(reader_id), post_id=post_id, post_author_id=post_author_id)
        self._publish("comment_opens", reader_id, event)

    def _publish(self, topic: str, key: int, event) -> None:
        if len(self._tasks) >= self._max_in_flight:
            LOGGED.labels(topic, "dropped").inc()
            return
        task = asyncio.create_task(self._send(topic, key, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, topic: str, key: int, event) -> None:
        try:
            await self._events.publish(topic, key, event)
            LOGGED.labels(topic, "published").inc()
        except Exception as exc:  # Kafka away or slow: the impression is lost, the feed is not held up
            LOGGED.labels(topic, "failed").inc()
            log.debug("could not log %s: %s", topic, exc)

    async def drain(self) -> None:
        """Wait for the publishes in flight (at shutdown, and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
