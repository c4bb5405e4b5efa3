"""Likes, comments, replies, mentions and follows -> aggregated notifications, pushed to live sockets.

One agent reads the four topics. Each event becomes notes ("notify B that A did X to Y"), never
for the actor themself; `NotificationWriter` (app/notifications/writer.py) folds the notes into
aggregates idempotently, and each aggregate that changed is published on its recipient's Redis
channel, where the API processes holding that user's sockets pick it up (app/notifications/hub.py).
The push is best effort: the stored list is the truth, and a client that missed a push reads it
with GET /v1/notifications.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import faust
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.events import CommentChanged, Event, FollowChanged, LikeChanged, PostCreated
from app.notifications import model
from app.notifications.hub import notification_channel, push_message
from app.notifications.model import Group, Note
from app.notifications.writer import NotificationWriter
from app.settings import Settings
from app.storage.follows import FollowRepository
from app.storage.users import UserRepository
from app.text import USERNAME
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.2  # the longest a notification waits for its batch to fill: part of push latency
TOPICS = ("follows", "posts", "likes", "comments")
PUSH_PAUSE_S = 2.0  # after a failed publish, pushes are skipped this long instead of each waiting on Redis


class NoteMaker:
    """Who is told what about each event, looking up what events do not carry (user ids, follow edges)."""

    def __init__(self, users: UserRepository, follows: FollowRepository, window_h: int, max_mentions: int) -> None:
        self.users = users
        self.follows = follows
        self.window_h = window_h
        self.max_mentions = max_mentions

    async def notes(self, events: Iterable[Event]) -> list[Note]:
        per_event = await asyncio.gather(*(self.notes_for(event) for event in events))
        return [note for notes in per_event for note in notes]

    async def notes_for(self, event: Event) -> list[Note]:
        if isinstance(event, LikeChanged):
            return self._like(event)
        if isinstance(event, CommentChanged):
            return await self._comment(event)
        if isinstance(event, PostCreated):
            return await self._post(event)
        if isinstance(event, FollowChanged):
            return await self._follow(event)
        return []  # PostDeleted and anything newer: nothing to tell

    def _window(self, event: Event) -> int:
        return model.window_of(event.at_ms, self.window_h)

    def _like(self, e: LikeChanged) -> list[Note]:
        if not e.liked or e.recheck or e.post_author_id == e.actor_id:
            return []  # a recheck's like may never have happened
        key = model.like_key(e.post_id, self._window(e))
        return [Note(e.post_author_id, model.LIKE, key, e.actor_id, e.at_ms, post_id=e.post_id)]

    async def _comment(self, e: CommentChanged) -> list[Note]:
        """A reply tells the parent's author; a comment the post's author; mentions the rest, each person once."""
        if not e.created:
            return []
        notes: list[Note] = []
        told = {e.actor_id}

        def tell(recipient: int, kind: str, key: str) -> None:
            if recipient not in told:
                told.add(recipient)
                notes.append(Note(recipient, kind, key, e.actor_id, e.at_ms, post_id=e.post_id,
                                  comment_id=e.comment_id))

        if e.parent_id is not None and e.parent_author_id is not None:
            tell(e.parent_author_id, model.REPLY, model.reply_key(e.parent_id, self._window(e)))
        tell(e.post_author_id, model.COMMENT, model.comment_key(e.post_id, self._window(e)))
        for user_id in await self._mentioned(e.mentions):
            tell(user_id, model.MENTION, model.comment_mention_key(e.comment_id))
        return notes

    async def _post(self, e: PostCreated) -> list[Note]:
        key = model.post_mention_key(e.post_id)
        return [
            Note(user_id, model.MENTION, key, e.actor_id, e.at_ms, post_id=e.post_id)
            for user_id in await self._mentioned(e.mentions)
            if user_id != e.actor_id
        ]

    async def _follow(self, e: FollowChanged) -> list[Note]:
        if not e.following or e.followee_id == e.actor_id:
            return []
        if await self.follows.edge(e.actor_id, e.followee_id) is None:
            return []  # unfollowed again before we got here: nothing to tell
        return [Note(e.followee_id, model.FOLLOW, model.follow_key(self._window(e)), e.actor_id, e.at_ms)]

    async def _mentioned(self, usernames: list[str]) -> list[int]:
        """The ids of the first max_mentions distinct mentioned users that exist."""
        names = [name for name in dict.fromkeys(usernames) if USERNAME.fullmatch(name)][: self.max_mentions]
        ids = await asyncio.gather(*(self.users.id_by_username(name) for name in names))
        return [user_id for user_id in ids if user_id is not None]


class Pusher:
    """Publishes a changed notification on its recipient's channel; skips pushing for a moment after a failure."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace
        self._paused_until = 0.0

    async def push(self, group: Group) -> None:
        if time.monotonic() < self._paused_until:
            return
        try:
            await self.redis.publish(
                notification_channel(self.namespace, group.user_id), push_message(model.render(group))
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._paused_until = time.monotonic() + PUSH_PAUSE_S
            log.warning("notification push failed (%r); pushes paused for %.0f s", exc, PUSH_PAUSE_S)


async def notify(maker: NoteMaker, writer: NotificationWriter, pusher: Pusher, events: list[Event]) -> None:
    """One batch: notes from the events, written into aggregates, each changed one pushed once written."""
    await writer.apply(await maker.notes(events), on_change=pusher.push)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    # several record types share these topics; faust finds each one's class by the name the record carries
    topic = event_topic(app, settings, *TOPICS)

    @app.agent(topic, name="notifications")
    async def notifications(stream) -> None:
        async def make_parts() -> tuple[NoteMaker, NotificationWriter]:
            storage = await wiring.storage()
            maker = NoteMaker(
                storage.users, storage.follows, settings.notification_aggregate_window_h,
                settings.notification_max_mentions,
            )
            return maker, NotificationWriter.for_settings(settings, storage.notifications, storage.users)

        maker, writer = await until_ready("notifications", make_parts)
        pusher = Pusher(wiring.redis(), settings.cassandra_keyspace)
        await each_batch(stream, "notifications", lambda batch: notify(maker, writer, pusher, batch),
                         size=BATCH_SIZE, within=BATCH_SECONDS, settings=settings)
