"""Writing feeds: push a post to readers, copy an author's recent posts in, take them out, trim.

Used by the fan-out and follow workers (streams/) and by the API when a returning reader's
feed is rebuilt. Every write is keyed by (reader, post id), so doing any of it twice leaves
the same rows: a worker that dies half way simply does it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from app.ids import ID_EPOCH_MS, first_id_at, id_millis
from app.settings import Settings
from app.storage.feed import Entry, FeedRepository
from app.storage.feed_cache import FeedCache
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.timelines import BucketedTimeline

T = TypeVar("T")

# one push in TRIM_EVERY also trims that reader's partition back to feed_max_entries: reading a
# partition's newest ids costs ~feed_max_entries rows, so trimming on every push would cost more
# than the push; at 1 in 64 a partition holds at most about feed_max_entries + a few hundred rows
TRIM_EVERY = 64
TRIM_CONCURRENCY = 16


async def for_each(items: Sequence[T], action: Callable[[T], Awaitable[object]], concurrency: int) -> None:
    """Run `action` on every item with at most `concurrency` running at once; the first error propagates."""
    pending = iter(items)

    async def work() -> None:
        for item in pending:  # the workers share one iterator: each item is taken exactly once
            await action(item)

    await asyncio.gather(*(work() for _ in range(max(1, min(concurrency, len(items))))))


def trims_here(reader_id: int, post_id: int) -> bool:
    """Whether pushing this post to this reader also trims the reader's feed (the same answer on replay)."""
    return hash((reader_id, post_id)) % TRIM_EVERY == 0


class FeedWriter:
    def __init__(
        self,
        feed: FeedRepository,
        posts_by_user: BucketedTimeline,
        cache: FeedCache,
        *,
        max_entries: int,
        ttl_s: int,
        backfill_posts: int,
        concurrency: int,
    ) -> None:
        self.feed = feed
        self.posts_by_user = posts_by_user
        self.cache = cache
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.backfill_posts = backfill_posts
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)  # single feed writes in flight, across all callers
        self._bulk = asyncio.Semaphore(1)  # one bulk write at a time, each with `concurrency` in flight

    @classmethod
    def for_settings(
        cls, settings: Settings, feed: FeedRepository, posts_by_user: BucketedTimeline, cache: FeedCache
    ) -> FeedWriter:
        return cls(
            feed,
            posts_by_user,
            cache,
            max_entries=settings.feed_max_entries,
            ttl_s=settings.feed_ttl_days * 86400,
            backfill_posts=settings.feed_backfill_posts,
            concurrency=settings.feed_fanout_concurrency,
        )

    def horizon_id(self) -> int:
        """Posts older than this id are out of every feed."""
        return first_id_at(int(time.time() * 1000) - self.ttl_s * 1000)

    def ttl_for(self, post_id: int) -> int:
        """Seconds a feed row of this post lives: it leaves every feed when the post leaves the horizon."""
        age_s = (time.time() * 1000 - id_millis(post_id) - ID_EPOCH_MS) / 1000
        return int(self.ttl_s - max(0.0, age_s))

    # --- push and remove one post -------------------------------------------
    async def push(self, readers: list[int], entry: Entry) -> None:
        """Write `entry` into every reader's feed, then trim and make cached first pages stale."""
        if await self.insert(readers, entry):
            await self.settle(readers, entry)

    async def insert(self, readers: list[int], entry: Entry) -> bool:
        """The feed rows alone (bulk, `concurrency` in flight); False when the post is past the horizon."""
        ttl_s = self.ttl_for(entry.post_id)
        if ttl_s <= 0 or not readers:
            return False
        async with self._bulk:
            await self.feed.add_to_many(readers, entry, ttl_s, self.concurrency)
        return True

    async def settle(self, readers: list[int], entry: Entry) -> None:
        """After `insert`: trim the feeds whose turn it is, and merge the post into the readers' candidate
        sets (Redis), so their next read ranks it in without a refill."""
        trimming = [reader for reader in readers if trims_here(reader, entry.post_id)]
        await for_each(trimming, self.trim, TRIM_CONCURRENCY)
        await self.cache.merge(readers, [entry])

    async def remove(self, readers: list[int], post_id: int) -> None:
        async with self._bulk:
            await self.feed.remove_from_many(readers, post_id, self.concurrency)
        await self.cache.remove_post(readers, post_id)

    async def trim(self, reader: int) -> None:
        """Keep the reader's newest max_entries entries; everything older goes in one range tombstone."""
        kept = await self.feed.newest(reader, self.max_entries)
        if len(kept) == self.max_entries:
            await self.feed.drop_older_than(reader, kept[-1].post_id)

    # --- whole authors --------------------------------------------------------
    async def recent_posts(self, author_id: int) -> list[Entry]:
        """The author's newest feed_backfill_posts posts still inside the feed horizon."""
        ids, _ = await self.posts_by_user.page(author_id, LATEST_BUCKET, NO_UPPER_BOUND, self.backfill_posts)
        horizon = self.horizon_id()
        return [Entry(post_id, author_id) for post_id in ids if post_id >= horizon]

    async def copy_author(self, reader: int, author_id: int, *, only_if_active: bool = True) -> None:
        """Copy the author's recent posts into the reader's feed (a new follow, a rebuild).

        Like fan-out, it skips a reader who is away (their feed is rebuilt when they return)."""
        if only_if_active and await self.cache.active_among([reader]) == set():
            return
        copied = []
        for entry in await self.recent_posts(author_id):
            ttl_s = self.ttl_for(entry.post_id)
            if ttl_s > 0:
                async with self._slots:
                    await self.feed.add(reader, entry, ttl_s)
                copied.append(entry)
        await self.cache.merge([reader], copied)

    async def remove_author(self, reader: int, author_id: int) -> None:
        """Take every post of the author out of the reader's feed (an unfollow): one bounded scan."""
        entries = [e for e in await self.feed.all_entries(reader) if e.author_id == author_id]
        await for_each(entries, lambda e: self.feed.remove(reader, e.post_id), self.concurrency)
        await self.cache.remove_author(reader, author_id)

    async def rebuild(self, reader: int, followees: list[int]) -> None:
        """Refill a returning reader's feed from the recent posts of everyone they follow."""
        await for_each(
            followees, lambda author: self.copy_author(reader, author, only_if_active=False), min(32, self.concurrency)
        )
        await self.trim(reader)
        await self.cache.invalidate([reader])
