"""Post events -> followers' feeds (push), unless the author is a celebrity (pulled at read time).

For each PostCreated, the author's followers are walked a page at a time; the active ones (those
who opened their feed within feed_inactive_after_days, app/storage/feed_cache.py) get a `feed_items` row.
Writes run concurrently, at most feed_fanout_concurrency in flight, each a single-partition insert
(never a multi-partition batch). Rows are keyed by (reader, post id): a batch replayed after a
crash writes the same rows again, so nothing is lost and nothing doubles.

A PostDeleted removes the post from every follower's feed. Readers stop seeing it at once anyway
(a feed read drops posts whose row is gone); this cleans the rows up.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust

from app.events import PostCreated, PostDeleted
from app.feed.writer import FeedWriter
from app.settings import Settings
from app.storage.feed import Entry
from app.storage.follows import FollowRepository
from app.wiring import Wiring, feed_writer
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_SECONDS = 0.2
FOLLOWER_PAGE = 1000


class FanOut:
    def __init__(self, writer: FeedWriter, follows: FollowRepository) -> None:
        self.writer = writer
        self.feed = writer.feed
        self.cache = writer.cache
        self.follows = follows

    async def apply(self, events: list[PostCreated | PostDeleted]) -> None:
        deleted = [e for e in events if isinstance(e, PostDeleted)]
        gone = {e.post_id for e in deleted}
        created = [e for e in events if isinstance(e, PostCreated) and e.post_id not in gone]
        await asyncio.gather(
            *(self.push(e.actor_id, e.post_id) for e in created),
            *(self.withdraw(e.actor_id, e.post_id) for e in deleted),
        )

    async def push(self, author_id: int, post_id: int) -> int:
        """Write the post into the feeds of the author's active followers; returns how many.

        Pipelined: while one page's rows are written, the next page of followers is read and the
        previous page is trimmed and its cached first pages made stale."""
        if await self.feed.is_celebrity(author_id):
            # pulled at read time: readers merge the author's newest posts from Redis into their candidates
            await self.cache.celebrity_post(author_id, post_id, self.writer.ttl_for(post_id))
            return 0
        started, readers = time.perf_counter(), 0
        entry = Entry(post_id, author_id)
        pages = self.follows.follower_pages(author_id, FOLLOWER_PAGE)
        next_page = asyncio.ensure_future(anext(pages, None))
        settling: list[asyncio.Future] = []
        try:
            while (page := await next_page) is not None:
                next_page = asyncio.ensure_future(anext(pages, None))
                active = await self.cache.active_among(page)
                targets = page if active is None else [reader for reader in page if reader in active]
                if await self.writer.insert(targets, entry):
                    settling.append(asyncio.ensure_future(self.writer.settle(targets, entry)))
                readers += len(targets)
        finally:
            next_page.cancel()
            results = await asyncio.gather(*settling, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        log.info("post %d: pushed to %d feeds in %.3f s", post_id, readers, time.perf_counter() - started)
        return readers

    async def withdraw(self, author_id: int, post_id: int) -> None:
        if await self.feed.is_celebrity(author_id):
            # never pushed since the author became one; older rows age out with the feed TTL
            await self.cache.celebrity_post_removed(author_id, post_id)
            return
        async for page in self.follows.follower_pages(author_id, FOLLOWER_PAGE):
            await self.writer.remove(page, post_id)


async def make_fanout(settings: Settings, wiring: Wiring) -> FanOut:
    storage = await wiring.storage()
    return FanOut(feed_writer(settings, storage, wiring.caches()), storage.follows)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    topic = event_topic(app, settings, "posts")  # PostCreated and PostDeleted, keyed by author

    @app.agent(topic, name="feed_fanout")
    async def feed_fanout(stream) -> None:
        fanout = await until_ready("feed_fanout", lambda: make_fanout(settings, wiring))
        await each_batch(stream, "feed_fanout", fanout.apply, size=BATCH_SIZE, within=BATCH_SECONDS, settings=settings)
