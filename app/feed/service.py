"""Reading the home feed: pushed entries merged with pulled celebrity posts, ranked or by time.

Two orders, both paged by opaque cursors that neither repeat nor skip while posts arrive:

- ranked (the default): the newest feed_rank_window candidates (pushed entries and the posts of
  followed celebrities, down to a boundary id) are ranked once into a *snapshot*, stored in
  Cassandra (`feed_snapshots`) for feed_snapshot_ttl_s. Its cursor is (snapshot, offset), so
  later pages follow the order the first page was cut from, however scores change meanwhile.
  After the snapshot, the posts older than its boundary follow newest first.
- chronological: newest first; the cursor is the last post id served.

Every post that was in the feed when the first page was read is served exactly once. A post
that reaches the feed later (a new post, or slow fan-out) shows up on the next refresh.

The first page of the ranked feed is cached in Redis (app/storage/feed_cache.py) and invalidated by
fan-out; without Redis every read is served from Cassandra.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from app.cursors import CursorCodec
from app.errors import BadRequest
from app.feed.ranking import Candidate, Ranker
from app.feed.writer import FeedWriter
from app.ids import IdGenerator, month_bucket
from app.posts.service import PostService
from app.storage.affinity import AffinityRepository
from app.storage.feed import Entry, FeedRepository, newest_first
from app.storage.feed_cache import FeedCache
from app.storage.follows import FollowRepository
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.posts import PostRepository

RANKED = "ranked"
CHRONOLOGICAL = "chronological"
ORDERS = (RANKED, CHRONOLOGICAL)
UNCACHED = "uncached"
PULL_PER_AUTHOR = 25  # a celebrity's newest posts read per ranked snapshot
FILL_ROUNDS = 4  # reads per page when deleted posts leave holes to fill


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None
    # reported in X-Feed-Cache: the ranked first page is "hit", "miss", or "bypass" (Redis unavailable);
    # later pages and the chronological order are never cached: "uncached"
    cache: str


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: int
    post_ids: list[int]  # ranked, best first
    boundary: int  # posts older than this follow the list, newest first


@dataclass
class FeedService:
    feed: FeedRepository
    writer: FeedWriter
    cache: FeedCache
    follows: FollowRepository
    affinity: AffinityRepository
    post_rows: PostRepository
    posts: PostService
    ranker: Ranker
    ids: IdGenerator
    cursors: CursorCodec
    rank_window: int
    snapshot_ttl_s: int

    async def read(self, viewer: int, order: str, limit: int, cursor: str | None) -> Page:
        if order == CHRONOLOGICAL:
            position = self.cursors.decode(CHRONOLOGICAL, cursor)
            if position is None:
                await self._welcome_back(viewer)
                before = NO_UPPER_BOUND
            else:
                before = _int_field(position, "a")
            items, next_before = await self._by_time(viewer, before, limit)
            return Page(items, self._time_cursor(CHRONOLOGICAL, next_before), UNCACHED)
        position = self.cursors.decode(RANKED, cursor)
        if position is None:
            return await self._first_ranked_page(viewer, limit)
        if "a" in position:  # past the snapshot: the older posts, newest first
            items, next_before = await self._by_time(viewer, _int_field(position, "a"), limit)
            return Page(items, self._time_cursor(RANKED, next_before), UNCACHED)
        snapshot_id, offset = _int_field(position, "s"), _int_field(position, "o")
        stored = await self.feed.snapshot(viewer, snapshot_id)
        if stored is None:
            raise BadRequest("this feed cursor has expired; load the feed again", code="cursor_expired")
        snapshot = Snapshot(snapshot_id, *stored)
        items, next_cursor = await self._snapshot_page(viewer, snapshot, offset, limit, rows={})
        return Page(items, next_cursor, UNCACHED)

    # --- ranked ----------------------------------------------------------------
    async def _first_ranked_page(self, viewer: int, limit: int) -> Page:
        was_active, cached, version = await self.cache.open_feed(viewer)
        if was_active is False:
            await self._rebuild(viewer)
            cached = None
        if cached is not None and cached["limit"] == limit:  # deleted posts already left out
            return Page(cached["items"], cached["next_cursor"], "hit")
        rows: dict = {}
        if cached is not None:
            snapshot = Snapshot(cached["s"], cached["ids"], cached["b"])
        else:
            snapshot, rows = await self._new_snapshot(viewer)
        items, next_cursor = await self._snapshot_page(viewer, snapshot, 0, limit, rows)
        if was_active is None:
            return Page(items, next_cursor, "bypass")
        await self.cache.store_first_page(
            viewer,
            {"s": snapshot.snapshot_id, "ids": snapshot.post_ids, "b": snapshot.boundary, "limit": limit,
             "items": items, "next_cursor": next_cursor},
            version,
        )
        return Page(items, next_cursor, "miss")

    async def _new_snapshot(self, viewer: int) -> tuple[Snapshot, dict]:
        """Rank the newest candidates, store the order; returns it and the `posts` rows it read."""
        window = self.rank_window
        pushed, celebrities, affinity = await asyncio.gather(
            self.feed.newest(viewer, window), self.feed.followed_celebrities(viewer), self.affinity.of_reader(viewer)
        )
        boundary = self.writer.horizon_id()
        if len(pushed) == window:  # older pushed entries exist: the window ends at the oldest one read
            boundary = max(boundary, pushed[-1].post_id)
        pulled = await asyncio.gather(*(self._pull(author, NO_UPPER_BOUND, PULL_PER_AUTHOR) for author in celebrities))
        for posts in pulled:
            if len(posts) == PULL_PER_AUTHOR:  # this author has older posts: the window ends here too
                boundary = max(boundary, posts[-1].post_id)
        pool = [e for e in newest_first([*pushed, *(e for posts in pulled for e in posts)]) if e.post_id >= boundary]
        if len(pool) > window:
            pool = pool[:window]
            boundary = pool[-1].post_id
        rows = await self.post_rows.get_many(e.post_id for e in pool)
        candidates = [
            Candidate(e.post_id, e.author_id, rows[e.post_id].like_count or 0, rows[e.post_id].comment_count or 0,
                      affinity.get(e.author_id, 0))
            for e in pool
            if e.post_id in rows  # deleted posts drop out here
        ]
        ranked = [c.post_id for c in self.ranker.rank(candidates, int(time.time() * 1000))]
        snapshot = Snapshot(self.ids.next_id(), ranked, boundary)
        await self.feed.save_snapshot(viewer, snapshot.snapshot_id, ranked, boundary, self.snapshot_ttl_s)
        return snapshot, rows

    async def _snapshot_page(
        self, viewer: int, snapshot: Snapshot, offset: int, limit: int, rows: dict
    ) -> tuple[list[dict], str | None]:
        items: list[dict] = []
        ids = snapshot.post_ids
        while len(items) < limit and offset < len(ids):
            chunk = ids[offset : offset + limit - len(items)]
            offset += len(chunk)
            items += await self._hydrate(viewer, chunk, rows)
        if offset < len(ids):
            return items, self.cursors.encode(RANKED, {"s": snapshot.snapshot_id, "o": offset})
        if snapshot.boundary > self.writer.horizon_id():  # older posts remain below the snapshot
            return items, self.cursors.encode(RANKED, {"a": snapshot.boundary})
        return items, None

    # --- by time -----------------------------------------------------------------
    async def _by_time(self, viewer: int, before: int, limit: int) -> tuple[list[dict], int | None]:
        """Up to `limit` posts older than `before`, newest first; and the id to continue before."""
        items: list[dict] = []
        horizon = self.writer.horizon_id()
        celebrities = await self.feed.followed_celebrities(viewer)
        for _ in range(FILL_ROUNDS):
            want = limit - len(items)
            pushed, *pulled = await asyncio.gather(
                self.feed.newest(viewer, want, before), *(self._pull(a, before, want) for a in celebrities)
            )
            merged = newest_first([*pushed, *(e for posts in pulled for e in posts)])[:want]
            page = [e for e in merged if e.post_id >= horizon]
            if page:
                items += await self._hydrate(viewer, [e.post_id for e in page], {})
            if len(page) < want:  # nothing older is left
                return items, None
            before = page[-1].post_id
            if len(items) == limit:
                break
        return items, before

    async def _hydrate(self, viewer: int, post_ids: list[int], rows: dict) -> list[dict]:
        """The posts as the API shows them, minus deleted ones and those of authors the reader no
        longer follows (an unfollow takes effect at once; the worker removes the rows later)."""
        items = await self.posts.hydrate(post_ids, viewer, rows)
        followed = await self.follows.is_following(viewer, {int(item["author"]["id"]) for item in items})
        return [item for item in items if int(item["author"]["id"]) in followed]

    def _time_cursor(self, kind: str, before: int | None) -> str | None:
        return None if before is None else self.cursors.encode(kind, {"a": before})

    async def _pull(self, author_id: int, before: int, limit: int) -> list[Entry]:
        """A followed celebrity's newest posts older than `before`."""
        bucket = LATEST_BUCKET if before == NO_UPPER_BOUND else month_bucket(before)
        ids, _ = await self.post_rows.by_user.page(author_id, bucket, before, limit)
        return [Entry(post_id, author_id) for post_id in ids]

    # --- returning readers ---------------------------------------------------------
    async def _welcome_back(self, viewer: int) -> None:
        was_active, _, _ = await self.cache.open_feed(viewer)
        if was_active is False:
            await self._rebuild(viewer)

    async def _rebuild(self, viewer: int) -> None:
        """The reader was away (fan-out skipped them): refill their feed before serving it."""
        try:
            await self.writer.rebuild(viewer, await self.follows.all_following(viewer))
        except BaseException:
            await self.cache.forget_active(viewer)  # the next read tries again
            raise


def _int_field(position: dict, name: str) -> int:
    value = position.get(name)
    if type(value) is not int or value < 0:
        raise BadRequest("the cursor is not valid for this list", code="invalid_cursor")
    return value
