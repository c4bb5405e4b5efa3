"""Story events -> followers' trays (push), and follows -> the followed author's live stories.

A StoryPosted puts the story id in the `story_tray` row (reader, author) of every follower,
a page of followers at a time, each write a single-partition UPDATE that adds to a set: a
replayed batch adds the same ids again and changes nothing. Celebrities (the feed's pull set,
app/feed) are skipped: the tray reads their few live stories at request time instead.

A new follow copies the author's live stories into the new follower's tray and an unfollow drops
the row: the follow agent (streams/follow_graph.py) calls `follows_settled` once it has written
the followers mirror. The tray also checks follows when it is read, so an unfollow shows at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime

import faust

from app.events import StoryPosted
from app.settings import Settings
from app.storage.feed import FeedRepository
from app.storage.follows import FollowRepository
from app.storage.stories import StoryRepository
from app.storage.users import UserRepository
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.feed_graph import FollowState
from streams.retry import until_ready

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_SECONDS = 0.2
FOLLOWER_PAGE = 1000


class TrayWriter:
    def __init__(self, stories: StoryRepository, follows: FollowRepository, users: UserRepository,
                 feed: FeedRepository, concurrency: int) -> None:
        self.stories = stories
        self.follows = follows
        self.users = users
        self.feed = feed
        self.concurrency = concurrency

    async def posted(self, events: list[StoryPosted]) -> None:
        await asyncio.gather(*(self.push(e.actor_id, e.story_id, _at(e.expires_at_ms)) for e in events))

    async def push(self, author_id: int, story_id: int, expires_at: datetime) -> int:
        """Put the story in the trays of the author's followers; returns how many."""
        if await self.feed.is_celebrity(author_id):
            return 0  # pulled at read time
        author = await self.users.get(author_id)
        if author is None or author.username is None:
            return 0
        readers = 0
        async for page in self.follows.follower_pages(author_id, FOLLOWER_PAGE):
            await self.stories.push(page, author_id, author.username, story_id, expires_at, self.concurrency)
            readers += len(page)
        log.info("story %d: pushed to %d trays", story_id, readers)
        return readers

    async def follows_settled(self, states: list[FollowState]) -> None:
        """Make each reader's tray row for the author match the follow edge as it is now (called by
        the follow agent once the followers mirror is written, so a story posted meanwhile is either
        pushed through the mirror or read here). An author gaining many followers in one batch is
        read once for all of them."""
        new_followers: dict[int, list[int]] = defaultdict(list)
        for state in states:
            if state.following:
                new_followers[state.followee_id].append(state.follower_id)
        await asyncio.gather(
            *(self.stories.drop_tray_row(s.follower_id, s.followee_id) for s in states if not s.following),
            *(self._copy_live_stories(author, readers) for author, readers in new_followers.items()),
        )

    async def _copy_live_stories(self, author_id: int, reader_ids: list[int]) -> None:
        if await self.feed.is_celebrity(author_id):
            return  # pulled at read time
        live = await self.stories.live_ids(author_id)
        if not live:
            return
        author = await self.users.get(author_id)
        if author is None or author.username is None:
            return
        for story_id, expires_at in live:
            await self.stories.push(reader_ids, author_id, author.username, story_id, expires_at, self.concurrency)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def make_tray_writer(settings: Settings, wiring: Wiring) -> TrayWriter:
    s = await wiring.storage()
    return TrayWriter(s.stories, s.follows, s.users, s.feed, settings.feed_fanout_concurrency)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    stories = event_topic(app, settings, "stories")

    @app.agent(stories, name="story_tray")
    async def story_tray(stream) -> None:
        writer = await until_ready("story_tray", lambda: make_tray_writer(settings, wiring))
        await each_batch(stream, "story_tray", writer.posted, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=StoryPosted)
