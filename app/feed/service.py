"""Reading the home feed: pushed entries merged with pulled celebrity posts, ranked or by time.

Two orders, both paged by opaque cursors that neither repeat nor skip while posts arrive:

- ranked (the default): the newest feed_rank_window candidates of the reader's candidate set (Redis,
  app/storage/feed_cache.py: every post of the feed down to a boundary id, with the features the
  ranker needs) are ranked into a *snapshot*. The read that ranks them also freezes them in Redis
  (`fs:<reader>:<snapshot>`, feed_snapshot_ttl_s), in the same round trip; later pages rank that
  frozen copy again, which gives the same order, so the cursor is (snapshot, offset).
  After the snapshot, the posts older than its boundary follow newest first.
- chronological: newest first; the cursor is the last post id served (the candidate set while the
  cursor is inside it, Cassandra below its boundary).

Every post that was in the feed when the first page was read is served exactly once. A post
that reaches the feed later (a new post, or slow fan-out) shows up on the next refresh.

A page costs one Redis round trip here, plus `PostService.hydrate`, and writes nothing to Cassandra.
The candidate set is filled from Cassandra by a *refill* off the request path (a task of the API
process): when it is missing (a new or returning reader, a flushed Redis: the page then waits for it up
to feed_rebuild_wait_ms), or every feed_refill_after_s while the reader reads (counts and celebrities).
Fan-out merges pushes into it; without Redis every read is served from Cassandra, newest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from app.cursors import CursorCodec, position_int
from app.errors import BadRequest
from app.feed.writer import FeedWriter
from app.ids import IdGenerator, month_bucket
from app.metrics import BACKGROUND, ROUTE
from app.posts.service import PostService
from app.ranking.impressions import ImpressionLog
from app.ranking.serving import FORMULA, FeedRankers, Ranking, UnknownRanker
from app.storage.affinity import AffinityRepository
from app.storage.feed import Entry, FeedRepository, newest_first
from app.storage.feed_cache import DOWN, Candidate, Candidates, FeedCache, FeedView, Refill
from app.storage.follows import FollowRepository
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.posts import PostRepository

log = logging.getLogger(__name__)

RANKED = "ranked"
CHRONOLOGICAL = "chronological"
ORDERS = (RANKED, CHRONOLOGICAL)
UNCACHED = "uncached"
PULL_PER_AUTHOR = 25  # a celebrity's newest posts read per refill
CATCH_UP_ENTRIES = 100  # feed entries read again after a refill's fill (pushes that arrived while it read)
FILL_ROUNDS = 4  # reads per page when deleted posts leave holes to fill (the Cassandra path)
FOLLOW_CHECK_CHUNK = 100  # FollowRepository.is_following reads at most this many at once


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_cursor: str | None
    # reported in X-Feed-Cache: the ranked first page is "hit" (the latest snapshot reused: nothing
    # changed since), "miss" (ranked anew), or "bypass" (Redis unavailable: newest first from Cassandra);
    # later pages and the chronological order: "uncached"
    cache: str
    # reported in X-Feed-Ranker: what ordered the page ("formula" or "lightgbm-<version>"); None when
    # nothing ranked it (the chronological order, the posts past a snapshot, the Cassandra fallback)
    ranker: str | None = None


@dataclass
class FeedService:
    feed: FeedRepository
    writer: FeedWriter
    cache: FeedCache
    follows: FollowRepository
    affinity: AffinityRepository
    post_rows: PostRepository
    posts: PostService
    rankers: FeedRankers
    ids: IdGenerator
    cursors: CursorCodec
    rank_window: int
    refill_after_s: float = 300.0
    rebuild_wait_s: float = 1.0
    impressions: ImpressionLog | None = None  # the ranking log (app/ranking/impressions.py); None: nothing logged
    _refills: dict[int, asyncio.Task] = field(default_factory=dict, init=False, repr=False)

    async def read(self, viewer: int, order: str, limit: int, cursor: str | None) -> Page:
        if order == CHRONOLOGICAL:
            position = self.cursors.decode(CHRONOLOGICAL, cursor)
            before = NO_UPPER_BOUND if position is None else position_int(position, "a")
            items, next_before = await self._by_time(viewer, before, limit, first=position is None)
            return Page(items, self._time_cursor(CHRONOLOGICAL, next_before), UNCACHED)
        position = self.cursors.decode(RANKED, cursor)
        if position is None:
            return await self._first_ranked_page(viewer, limit)
        if "a" in position:  # past the snapshot: the older posts, newest first
            items, next_before = await self._by_time(viewer, position_int(position, "a"), limit, first=False)
            return Page(items, self._time_cursor(RANKED, next_before), UNCACHED)
        snapshot_id, offset = position_int(position, "s"), position_int(position, "o")
        ranker = position.get("r", FORMULA)  # cursors from before learned ranking name no ranker
        if not isinstance(ranker, str):
            raise BadRequest("invalid cursor", code="invalid_cursor")
        view = await self.cache.snapshot(viewer, snapshot_id)
        if view.candidates is None:  # expired, another reader's, or Redis is down: load the feed again
            raise _cursor_expired()
        items, next_cursor, ranking = await self._snapshot_page(viewer, view, offset, limit, ranker)
        return Page(items, next_cursor, UNCACHED, ranking.ranker)

    # --- ranked ----------------------------------------------------------------
    async def _first_ranked_page(self, viewer: int, limit: int) -> Page:
        view = await self._open(viewer, ranked=True, first=True)
        if view.candidates is None:  # Redis is down, or no candidate set in time: newest first from Cassandra
            items, next_before = await self._by_time_stored(viewer, NO_UPPER_BOUND, limit)
            return Page(items, self._time_cursor(RANKED, next_before), "bypass" if view.state == DOWN else "miss")
        items, next_cursor, ranking = await self._snapshot_page(viewer, view, 0, limit, None)
        return Page(items, next_cursor, "hit" if view.state == "hit" else "miss", ranking.ranker)

    def ranked_window(self, viewer: int, candidates: Candidates, ranker: str | None = None) -> tuple[Ranking, int]:
        """The snapshot's order (best first) and its boundary: the newest rank_window candidates at or
        above the set's boundary, ranked as of the snapshot's time by `ranker` (a later page: the one that
        ranked its first page) or the one chosen for the reader. The same input and ranker give the same
        order, so a later page ranks the frozen candidates again instead of storing the order."""
        horizon = self.writer.horizon_id()
        boundary = max(candidates.boundary, horizon)
        pool = sorted((c for c in candidates.rows if c.post_id >= boundary), key=lambda c: c.post_id, reverse=True)
        if len(pool) > self.rank_window:
            pool = pool[: self.rank_window]
            boundary = pool[-1].post_id
        return self.rankers.rank(viewer, pool, candidates.ranked_at_ms, ranker), boundary

    async def _snapshot_page(
        self, viewer: int, view: FeedView, offset: int, limit: int, ranker: str | None
    ) -> tuple[list[dict], str | None, Ranking]:
        """One page of the snapshot; posts deleted or unfollowed since are left out (the page may be short)."""
        candidates = view.candidates
        try:
            ranking, boundary = self.ranked_window(viewer, candidates, ranker)
        except UnknownRanker:  # ranked by a model this process does not hold (any more): rank anew
            raise _cursor_expired() from None
        ranked = ranking.order
        chunk = ranked[offset : offset + limit]
        shown = [c for c in chunk if view.keeps(c)]
        items = await self.posts.hydrate([c.post_id for c in shown], viewer)
        if self.impressions is not None and self.impressions.is_sampled(candidates.snapshot_id):
            served = {int(item["id"]) for item in items}
            self.impressions.served(viewer, candidates.snapshot_id, ranking.ranker, ranked, candidates.ranked_at_ms,
                                    [c for c in shown if c.post_id in served])
        offset += len(chunk)
        if offset < len(ranked):
            cursor = {"s": candidates.snapshot_id, "o": offset, "r": ranking.ranker}
            return items, self.cursors.encode(RANKED, cursor), ranking
        if boundary > self.writer.horizon_id():  # older posts remain below the snapshot
            return items, self.cursors.encode(RANKED, {"a": boundary}), ranking
        return items, None, ranking

    # --- by time -----------------------------------------------------------------
    async def _by_time(self, viewer: int, before: int, limit: int, *, first: bool) -> tuple[list[dict], int | None]:
        """Up to `limit` posts older than `before`, newest first, and the id to continue before: from the
        candidate set while `before` is above its boundary, else from Cassandra."""
        view = await self._open(viewer, ranked=False, first=first)
        candidates = view.candidates
        if candidates is None or before <= candidates.boundary:
            return await self._by_time_stored(viewer, before, limit)
        horizon = self.writer.horizon_id()
        lowest = max(candidates.boundary, horizon)
        rows = {c.post_id: c for c in candidates.rows if lowest <= c.post_id < before}
        # a celebrity's post is in Redis once fan-out has seen it; newest first promises every post at
        # once, so the followed celebrities' timelines are read too (one read each; none for most readers)
        pulled = await asyncio.gather(*(self._pull(a, before, limit) for a in candidates.celebrities))
        for entry in (e for posts in pulled for e in posts if e.post_id >= lowest):
            rows.setdefault(entry.post_id, Candidate(entry.post_id, entry.author_id, 0, 0, 0))
        newer = sorted(rows.values(), key=lambda c: c.post_id, reverse=True)
        if not newer:  # nothing left above the boundary: go on below it
            return await self._by_time_stored(viewer, min(before, candidates.boundary), limit)
        page = newer[:limit]
        items = await self.posts.hydrate([c.post_id for c in page if view.keeps(c)], viewer)
        if len(newer) > limit:
            return items, page[-1].post_id
        return items, (candidates.boundary if candidates.boundary > horizon else None)

    async def _by_time_stored(self, viewer: int, before: int, limit: int) -> tuple[list[dict], int | None]:
        """The same from Cassandra: pushed entries merged with the followed celebrities' posts."""
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
                items += await self._hydrate(viewer, [e.post_id for e in page])
            if len(page) < want:  # nothing older is left
                return items, None
            before = page[-1].post_id
            if len(items) == limit:
                break
        return items, before

    async def _hydrate(self, viewer: int, post_ids: list[int]) -> list[dict]:
        """The posts as the API shows them, minus deleted ones and those of authors the reader no
        longer follows (an unfollow takes effect at once; the worker removes the rows later)."""
        items = await self.posts.hydrate(post_ids, viewer)
        followed = await self.follows.is_following(viewer, {int(item["author"]["id"]) for item in items})
        return [item for item in items if int(item["author"]["id"]) in followed]

    def _time_cursor(self, kind: str, before: int | None) -> str | None:
        return None if before is None else self.cursors.encode(kind, {"a": before})

    async def _pull(self, author_id: int, before: int, limit: int) -> list[Entry]:
        """A followed celebrity's newest posts older than `before`."""
        bucket = LATEST_BUCKET if before == NO_UPPER_BOUND else month_bucket(before)
        ids, _ = await self.post_rows.by_user.page(author_id, bucket, before, limit)
        return [Entry(post_id, author_id) for post_id in ids]

    # --- the candidate set ----------------------------------------------------------
    async def _open(self, viewer: int, *, ranked: bool, first: bool) -> FeedView:
        """The reader's candidate set (one round trip). A first page of a reader who was away, or a read
        finding no set (or one marked due), starts a refill (with a rebuild of the feed for the one who was
        away) and waits for it up to rebuild_wait_s; a set older than refill_after_s is refilled after the
        page, off its path."""
        now_ms = int(time.time() * 1000)
        view = await self.cache.read(viewer, ranked=ranked, snapshot_id=self.ids.next_id(), now_ms=now_ms)
        if view.state == DOWN:
            return view
        # a set marked due (t = 0: the reader's follows changed) may lack a followed author's posts, so
        # it is not served, on any page, until it is refilled: serving it could skip a post
        missing = view.state == "none" or view.refilled_at_ms == 0
        if (first and view.was_active is False) or missing:
            refill = self._refill_soon(viewer, rebuild=first and view.was_active is False)
            with contextlib.suppress(Exception):  # logged by the task; the page is served from Cassandra
                await asyncio.wait_for(asyncio.shield(refill), self.rebuild_wait_s)
            if refill.done() and not refill.cancelled() and refill.exception() is None:
                view = await self.cache.read(viewer, ranked=ranked, snapshot_id=self.ids.next_id(), now_ms=now_ms)
            else:
                return FeedView(view.was_active, "none")
        elif now_ms - view.refilled_at_ms > self.refill_after_s * 1000:
            self._refill_soon(viewer, rebuild=False)
        return view

    def _refill_soon(self, viewer: int, *, rebuild: bool) -> asyncio.Task:
        """One refill per reader at a time in this process; its work is counted as "background"."""
        running = self._refills.get(viewer)
        if running is not None and not running.done():
            return running
        task = asyncio.get_running_loop().create_task(self._refill(viewer, rebuild))
        self._refills[viewer] = task
        task.add_done_callback(lambda done: self._refill_done(viewer, done))
        return task

    def _refill_done(self, viewer: int, task: asyncio.Task) -> None:
        if self._refills.get(viewer) is task:
            del self._refills[viewer]
        if not task.cancelled() and task.exception() is not None:
            log.warning("feed refill of reader %d failed: %r", viewer, task.exception())

    async def _refill(self, viewer: int, rebuild: bool) -> None:
        """Refill the reader's candidate set from Cassandra: the newest rank_window pushed entries, each
        followed celebrity's newest posts, their counts (`posts`) and the reader's interactions. For a
        reader who was away, their feed is first rebuilt (fan-out skipped them)."""
        ROUTE.set(BACKGROUND)  # off the request path: not the page's cost (this task has its own context)
        if rebuild:
            try:
                await self.writer.rebuild(viewer, await self.follows.all_following(viewer))
            except BaseException:
                await self.cache.forget_active(viewer)  # the next read tries again
                raise
        refill = await self.refill_from_storage(viewer)
        await self.cache.fill(viewer, refill, int(time.time() * 1000))
        await self._catch_up(viewer, refill.newest_read)

    async def _catch_up(self, viewer: int, newest_read: int) -> None:
        """Merge the pushes that arrived while the refill was reading. Fan-out writes `feed_items`, then merges
        into the candidate set, and a merge that finds no set is dropped (a new reader, a flushed Redis): a push
        between the refill's read and its fill would be in neither, and stay out of the served feed until the
        next refill (found by the fault run, docs/reliability.md). Read once more now that the set exists: any
        push later than this read finds the set."""
        fresh = [e for e in await self.feed.newest(viewer, CATCH_UP_ENTRIES) if e.post_id > newest_read]
        if fresh:
            await self.cache.merge([viewer], fresh)

    async def refill_from_storage(self, viewer: int) -> Refill:
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
        authors = sorted({e.author_id for e in pool})
        rows, followed = await asyncio.gather(self.post_rows.get_many(e.post_id for e in pool),
                                              self._followed_among(viewer, authors))
        kept = [
            Candidate(e.post_id, e.author_id, rows[e.post_id].like_count or 0, rows[e.post_id].comment_count or 0, 0)
            for e in pool
            if e.post_id in rows and e.author_id in followed  # deleted posts and unfollowed authors drop out
        ]
        # every author the reader engaged with, not only this window's: the story tray orders by them too
        interactions = {author: n for author, n in affinity.items() if n}
        newest_read = pushed[0].post_id if pushed else boundary  # before the filters: what was read, not kept
        return Refill(boundary, kept, celebrities, interactions, newest_read=newest_read)

    async def _followed_among(self, viewer: int, authors: list[int]) -> set[int]:
        chunks = [authors[i : i + FOLLOW_CHECK_CHUNK] for i in range(0, len(authors), FOLLOW_CHECK_CHUNK)]
        found = await asyncio.gather(*(self.follows.is_following(viewer, chunk) for chunk in chunks))
        return set().union(*found)


def _cursor_expired() -> BadRequest:
    return BadRequest("this feed cursor has expired; load the feed again", code="cursor_expired")
