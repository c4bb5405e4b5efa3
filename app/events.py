"""Events: the typed records that flow through Kafka, their topics, and the API's publisher.

One topic per kind of fact, keyed by what its consumers aggregate on. The records are
faust Records so the stream workers (streams/) decode exactly what the API encodes.
The publisher sends with acks=all and idempotence on: a send that returned was
written to every in-sync replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from app.client_security import kafka_options
from app.errors import Unavailable
from app.metrics import count_kafka
from app.settings import Settings

log = logging.getLogger(__name__)


class Event(faust.Record, serializer="json", abstract=True):
    event_id: str
    actor_id: int
    at_ms: int


class ProfileChanged(Event):
    """`actor_id`'s account was created (`created=True`) or its profile edited: what search shows of it
    may have changed. Consumers re-read the `users` row, so the event carries no profile fields. Keyed by user."""

    created: bool


class FollowChanged(Event):
    """`actor_id` started (`following=True`) or stopped following `followee_id`. Keyed by followee.

    `recheck`: the request failed while writing the edge (Cassandra went away), so whether the edge
    changed is unknown; consumers settle from the edge as it is now, read at SERIAL (which finishes
    a conditional write the failure left half done)."""

    followee_id: int
    bucket: int
    following: bool
    recheck: bool = False


class PostCreated(Event):
    """`actor_id` published `post_id`. Keyed by author."""

    post_id: int
    hashtags: list[str]
    mentions: list[str]


class PostDeleted(Event):
    """`actor_id` deleted `post_id` (published before the rows go). Keyed by author."""

    post_id: int
    hashtags: list[str]


class LikeChanged(Event):
    """`actor_id` liked (`liked=True`) or unliked `post_id`, written by `post_author_id`. Keyed by post.

    `changed_us` is the edge write the request makes after publishing (`likes` as of that microsecond
    time, liked naming `bucket`, or not); the like worker applies it itself if the edge is older, so
    an event out means the write lands. None in events from before likes dropped Paxos: their
    `bucket` is the bucket of the edge the request wrote or removed, None when the request found no
    edge (a retried unlike), and the worker then looks in every bucket.

    `recheck` (older events only): the request failed while writing the edge, so whether it changed
    is unknown; the worker settles the count from the edge as it is, nobody is notified and no
    affinity is recorded for it."""

    post_id: int
    post_author_id: int
    bucket: int | None
    liked: bool
    recheck: bool = False
    changed_us: int | None = None


class CommentChanged(Event):
    """`actor_id` wrote (`created=True`) or deleted comment `comment_id` on `post_id`. Keyed by post.

    A reply names its parent comment and that comment's author; `mentions` are the usernames the
    text mentions (without "@")."""

    post_id: int
    post_author_id: int
    comment_id: int
    parent_id: int | None
    parent_author_id: int | None
    mentions: list[str]
    created: bool


class StoryPosted(Event):
    """`actor_id` posted `story_id`, which expires at `expires_at_ms`. Keyed by author."""

    story_id: int
    expires_at_ms: int


class StoryViewed(Event):
    """`actor_id` viewed `story_id` of `author_id` (sent for every view; the first one fixed `bucket`,
    the `story_viewers` bucket the viewer belongs in). Keyed by story.

    `recheck`: the outbox's copy (app/outbox.py), recorded before the view was claimed, published by the
    reconciler when the request never published its own (Kafka refused it, or the process died): `bucket`
    and `viewed_at_ms` are not known then, so the worker reads the viewer's `story_views` row and counts
    the viewer if there is one."""

    story_id: int
    author_id: int
    bucket: int
    viewed_at_ms: int
    expires_at_ms: int
    recheck: bool = False


class FeedImpressions(Event):
    """`actor_id` was served one page of a ranked feed snapshot (a sampled one: settings.ranking_impression_sample).
    Keyed by reader. The analytics of ranking (docs/ranking.md): streams/ranking_log.py writes one
    `feed_impressions` row per post.

    `request_id` is the snapshot (every page of one ranking shares it: one query of the training set);
    `positions` are the posts' 0-based places in its order (a post deleted since is skipped, so they may
    have gaps), each post with its author and the ranking features as the ranker saw them
    (app/ranking/features.py, version `feature_version`).
    `ranker` names what ordered them: "formula" or "lightgbm-<version>" (the X-Feed-Ranker header)."""

    request_id: int
    ranker: str
    feature_version: int
    positions: list[int]
    post_ids: list[int]
    author_ids: list[int]
    features: list[list[float]]


class CommentsOpened(Event):
    """`actor_id` opened the comments of `post_id` (read their first page): a ranking label, like a like or a
    comment (docs/ranking.md). Keyed by reader. Best effort: not on the outbox, lost if Kafka refuses it."""

    post_id: int
    post_author_id: int


# topic suffix -> what it is keyed by; every topic gets settings.kafka_topic_partitions partitions
TOPICS: dict[str, str] = {
    "follows": "followee id",
    "posts": "author id",
    "likes": "post id",
    "comments": "post id",
    "users": "user id",
    "stories": "author id",
    "story_views": "story id",
    "impressions": "reader id",
    "comment_opens": "reader id",
}


# the events of a topic that a stream worker could not decode or apply go to `<topic>.dead`, one partition
# (streams/dead_letters.py); `photos-replay-dead` sends them back
DEAD_LETTER_SUFFIX = ".dead"
DEAD_LETTER_PARTITIONS = 1


def topic_name(settings: Settings, suffix: str) -> str:
    return f"{settings.kafka_topic_prefix}{suffix}"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of `topic` (a full name, `photos.likes` -> `photos.likes.dead`)."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


def new_event_fields(actor_id: int) -> dict:
    return {"event_id": uuid.uuid4().hex, "actor_id": actor_id, "at_ms": int(time.time() * 1000)}


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the project's topics, and their dead-letter topics, that do not exist yet (the broker does not
    auto-create)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **kafka_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = {topic_name(settings, suffix): settings.kafka_topic_partitions for suffix in TOPICS}
        wanted |= {dead_letter_topic(topic): DEAD_LETTER_PARTITIONS for topic in list(wanted)}
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=wanted[name],
                            replication_factor=settings.kafka_replication_factor,
                        )
                        for name in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()


class EventPublisher:
    """Sends events to Kafka. Connects in the background so the API serves reads while Kafka is down."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_until_up())

    async def _connect_until_up(self) -> None:
        delay = 0.5
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                request_timeout_ms=int(self._settings.kafka_send_timeout_s * 1000),
                **kafka_options(self._settings),
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                await producer.stop()
                log.warning("kafka not reachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            log.info("kafka producer connected to %s", self._settings.kafka_bootstrap)
            return

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the producer is connected; Unavailable after `timeout_s` (for command-line tools)."""
        if self._connector is None:
            raise RuntimeError("start() the publisher first")
        try:
            await asyncio.wait_for(asyncio.shield(self._connector), timeout_s)
        except TimeoutError:
            raise Unavailable(f"the event log (Kafka) did not answer within {timeout_s:.0f} s") from None

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, suffix: str, key: int, event: Event) -> None:
        """Send one event and wait until Kafka has it; Unavailable (503) when it cannot."""
        await self.publish_encoded(suffix, key, event.dumps())

    async def publish_encoded(self, suffix: str, key: int, payload: bytes) -> None:
        """`publish` for an event already encoded (the outbox keeps events as bytes: app/outbox.py)."""
        producer = self._producer
        if producer is None:
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        topic = topic_name(self._settings, suffix)
        count_kafka(topic)  # for the current route (app/metrics.py)
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, payload, key=str(key).encode()),
                timeout=self._settings.kafka_send_timeout_s,
            )
        except (TimeoutError, KafkaError) as exc:
            log.warning("publishing to %s failed: %r", suffix, exc)
            raise Unavailable("the event log (Kafka) did not accept the event; retry shortly") from exc

    async def is_healthy(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=1.0)
        except (TimeoutError, KafkaError, OSError):
            return False
        return True
