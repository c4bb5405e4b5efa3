"""Feed writes and the feed cache against the real Cassandra and Redis."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from redis.asyncio import Redis

from app.feed.writer import TRIM_EVERY, FeedWriter, trims_here
from app.ids import IdGenerator, first_id_at
from app.storage.feed import Entry, FeedRepository
from app.storage.feed_cache import FeedCache
from app.storage.posts import USER_POSTS
from app.storage.timelines import BucketedTimeline
from infra.procs import free_port

ids = IdGenerator()


@pytest.fixture(scope="module")
async def feed(cass):
    return await FeedRepository(cass).prepare()


@pytest.fixture(scope="module")
async def cache(redis_client, settings):
    return FeedCache.for_settings(settings, redis_client)


@pytest.fixture(scope="module")
async def writer(cass, feed, cache, settings):
    posts_by_user = await BucketedTimeline(cass, USER_POSTS).prepare()
    return FeedWriter(feed, posts_by_user, cache, max_entries=10, ttl_s=3600, backfill_posts=3, concurrency=8)


async def test_pushing_twice_leaves_one_entry(writer, feed):
    reader, entry = ids.next_id(), Entry(ids.next_id(), ids.next_id())
    for _ in range(2):
        await writer.push([reader], entry)
    assert await feed.newest(reader, 10) == [entry]


async def test_trim_keeps_the_newest_entries(writer, feed):
    reader, author = ids.next_id(), ids.next_id()
    entries = [Entry(ids.next_id(), author) for _ in range(15)]
    for entry in entries:
        await feed.add(reader, entry, 3600)
    await writer.trim(reader)
    assert await feed.newest(reader, 100) == entries[::-1][:10]


def test_one_push_in_trim_every_trims_and_replays_decide_alike():
    reader = ids.next_id()
    posts = [ids.next_id() for _ in range(TRIM_EVERY * 50)]
    trimming = [p for p in posts if trims_here(reader, p)]
    assert 20 <= len(trimming) <= 100  # about 1 in TRIM_EVERY
    assert trimming == [p for p in posts if trims_here(reader, p)]


async def test_rows_expire_with_the_post_not_with_the_write(writer):
    now_ms = int(time.time() * 1000)
    fresh, day_old = first_id_at(now_ms), first_id_at(now_ms - 86_400_000)
    assert 3590 <= writer.ttl_for(fresh) <= 3600
    assert writer.ttl_for(day_old) <= 0  # outside a one-hour horizon: never written
    reader = ids.next_id()
    await writer.push([reader], Entry(day_old, ids.next_id()))
    assert await writer.feed.newest(reader, 10) == []


async def test_remove_author_takes_out_only_that_authors_posts(writer, feed):
    reader, gone, stays = ids.next_id(), ids.next_id(), ids.next_id()
    for author in (gone, stays, gone):
        await feed.add(reader, Entry(ids.next_id(), author), 3600)
    await writer.remove_author(reader, gone)
    assert {e.author_id for e in await feed.newest(reader, 10)} == {stays}


async def test_copy_author_skips_readers_who_are_away(writer, feed, cache, cass):
    author, away, active = ids.next_id(), ids.next_id(), ids.next_id()
    posts_by_user = writer.posts_by_user
    from app.ids import month_bucket

    recent = [ids.next_id() for _ in range(5)]
    for post_id in recent:
        await posts_by_user.add(author, month_bucket(post_id), post_id)
    await cache.open_feed(active)  # opening the feed makes a reader active
    await writer.copy_author(away, author)
    await writer.copy_author(active, author)
    assert await feed.newest(away, 10) == []
    assert [e.post_id for e in await feed.newest(active, 10)] == recent[::-1][:3]  # backfill_posts=3


async def test_a_push_makes_the_cached_first_page_stale(cache):
    reader = ids.next_id()
    was_active, cached, version = await cache.open_feed(reader)
    assert (was_active, cached) == (False, None)
    await cache.store_first_page(reader, {"items": [], "limit": 20}, version)
    was_active, cached, _ = await cache.open_feed(reader)
    assert was_active is True and cached["limit"] == 20
    await cache.invalidate([reader])
    _, cached, _ = await cache.open_feed(reader)
    assert cached is None


async def test_a_page_built_before_a_push_is_stale_when_stored_after_it(cache):
    reader = ids.next_id()
    _, _, version = await cache.open_feed(reader)  # read begins
    await cache.invalidate([reader])  # fan-out pushes while the page is being built
    await cache.store_first_page(reader, {"items": [], "limit": 20}, version)
    _, cached, _ = await cache.open_feed(reader)
    assert cached is None


async def test_an_unreachable_redis_answers_unknown_fast_and_is_left_alone_for_a_while(settings):
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5, socket_connect_timeout=0.5)
    cache = FeedCache.for_settings(settings, client)
    try:
        assert await cache.open_feed(1) == (None, None, 0)
        assert await cache.active_among([1, 2]) is None  # fan-out then pushes to everyone
        assert not cache.available
        started = time.perf_counter()
        assert await cache.invalidate([1]) is False
        assert time.perf_counter() - started < 0.01  # the breaker answers without trying
    finally:
        await client.aclose()


async def test_a_cached_page_leaves_out_posts_deleted_after_it_was_cached(cache):
    reader, kept, deleted = ids.next_id(), ids.next_id(), ids.next_id()
    _, _, version = await cache.open_feed(reader)
    items = [{"id": str(kept)}, {"id": str(deleted)}]
    await cache.store_first_page(reader, {"items": items, "limit": 20}, version)
    await cache.note_deleted(deleted)
    _, cached, _ = await cache.open_feed(reader)
    assert cached["items"] == [{"id": str(kept)}]


# --- the candidate sets (Redis) ------------------------------------------------------------------
def _now_ms() -> int:
    return int(time.time() * 1000)


async def _read(cache, reader, ranked=True):
    return await cache.read(reader, ranked=ranked, snapshot_id=ids.next_id(), now_ms=_now_ms())


async def _filled(cache, reader, *rows):
    from app.storage.feed_cache import Candidate, Refill

    await cache.fill(reader, Refill(1, [Candidate(p, a, 0, 0, 0) for p, a in rows], []), _now_ms())


async def test_a_push_merges_into_the_candidate_set_and_a_new_snapshot_is_cut(cache):
    reader, author = ids.next_id(), ids.next_id()
    old = ids.next_id()
    await _filled(cache, reader, (old, author))
    first = await _read(cache, reader)
    assert first.state == "new" and [c.post_id for c in first.candidates.rows] == [old]
    assert (await _read(cache, reader)).state == "hit"  # nothing changed: the snapshot is reused
    new = ids.next_id()
    await cache.merge([reader], [Entry(new, author)])
    second = await _read(cache, reader)
    assert second.state == "new" and {c.post_id for c in second.candidates.rows} == {old, new}
    # the first snapshot is still there for its cursor, unchanged
    assert [c.post_id for c in (await cache.snapshot(reader, first.candidates.snapshot_id)).candidates.rows] == [old]


async def test_a_push_to_a_reader_without_a_candidate_set_creates_none(cache, redis_client):
    reader = ids.next_id()
    await cache.merge([reader], [Entry(ids.next_id(), ids.next_id())])
    assert not await redis_client.exists(cache.candidates_key(reader))


async def test_a_deleted_post_leaves_the_set_and_every_snapshot(cache):
    reader, author = ids.next_id(), ids.next_id()
    kept, doomed = ids.next_id(), ids.next_id()
    await _filled(cache, reader, (kept, author), (doomed, author))
    snapshot = await _read(cache, reader)
    await cache.note_deleted(doomed)  # the API, at the delete
    later = await cache.snapshot(reader, snapshot.candidates.snapshot_id)
    assert [c.post_id for c in later.candidates.rows if later.keeps(c)] == [kept]
    fresh = await _read(cache, reader, ranked=False)
    assert [c.post_id for c in fresh.candidates.rows if fresh.keeps(c)] == [kept]
    await cache.remove_post([reader], doomed)  # the worker
    assert doomed not in {c.post_id for c in (await _read(cache, reader)).candidates.rows}


async def test_an_unfollow_takes_the_author_out_at_once_snapshots_included(cache):
    reader, gone, stays = ids.next_id(), ids.next_id(), ids.next_id()
    a, b = ids.next_id(), ids.next_id()
    await _filled(cache, reader, (a, gone), (b, stays))
    snapshot = await _read(cache, reader)
    await cache.forget_author(reader, gone)
    view = await _read(cache, reader)
    assert view.state == "new" and {c.post_id for c in view.candidates.rows if view.keeps(c)} == {b}
    later = await cache.snapshot(reader, snapshot.candidates.snapshot_id)
    assert {c.post_id for c in later.candidates.rows if later.keeps(c)} == {b}
    # a late push of the author (fan-out read the followers before the unfollow) stays out too
    await cache.merge([reader], [Entry(ids.next_id(), gone)])
    view = await _read(cache, reader)
    assert {c.author_id for c in view.candidates.rows if view.keeps(c)} == {stays}
    await cache.followed_again(reader, gone)  # following again: back in
    assert gone in {c.author_id for c in (await _read(cache, reader)).candidates.rows}


async def test_a_follow_change_marks_the_set_due_for_a_refill(cache):
    reader = ids.next_id()
    await _filled(cache, reader, (ids.next_id(), ids.next_id()))
    assert (await _read(cache, reader)).refilled_at_ms > 0
    await cache.invalidate([reader])
    assert (await _read(cache, reader)).refilled_at_ms == 0


async def test_celebrity_posts_are_merged_in_at_read_time(cache):
    from app.storage.feed_cache import Refill

    reader, celebrity = ids.next_id(), ids.next_id()
    await cache.fill(reader, Refill(1, [], [celebrity]), _now_ms())
    post_id = ids.next_id()
    await cache.celebrity_post(celebrity, post_id, 3600)
    view = await _read(cache, reader)
    assert [(c.post_id, c.author_id) for c in view.candidates.rows] == [(post_id, celebrity)]
    await cache.celebrity_post_removed(celebrity, post_id)
    # (a reused ranked snapshot may still hold it for up to feed_cache_ttl_s, as a cached first page did)
    assert (await _read(cache, reader, ranked=False)).candidates.rows == []


async def test_live_like_counts_reach_the_candidates(cache, redis_client, settings):
    from app.storage.like_counts import LikeCounts

    reader, post_id = ids.next_id(), ids.next_id()
    await _filled(cache, reader, (post_id, ids.next_id()))
    counts = LikeCounts.for_settings(settings, redis_client)
    await counts.move(post_id, 1, 41)
    assert [c.like_count for c in (await _read(cache, reader)).candidates.rows] == [42]


async def test_the_candidate_set_is_trimmed_to_its_cap_and_its_boundary_rises(redis_client, settings):
    cache = FeedCache(redis_client, settings.cassandra_keyspace, 60, 3600, candidate_cap=4)
    reader, author = ids.next_id(), ids.next_id()
    await _filled(cache, reader)
    posts = [ids.next_id() for _ in range(12)]
    for post_id in posts:
        await cache.merge([reader], [Entry(post_id, author)])
    view = await _read(cache, reader)
    kept = sorted(c.post_id for c in view.candidates.rows)
    assert len(kept) <= 4 + 1 + 4 and kept == posts[-len(kept):]
    assert view.candidates.boundary == min(kept)


async def test_with_redis_unreachable_the_candidate_reads_say_down(settings):
    from app.storage.feed_cache import DOWN

    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5, socket_connect_timeout=0.5)
    cache = FeedCache.for_settings(settings, client)
    try:
        assert (await _read(cache, 1)).state == DOWN
        assert (await cache.snapshot(1, 2)).state == DOWN
        assert await cache.merge([1], [Entry(2, 3)]) is False
        assert await cache.forget_author(1, 3) is False
    finally:
        await client.aclose()


class Followed:
    """The reader follows every author (the follow check is not what this test is about)."""

    async def is_following(self, viewer, authors):
        return set(authors)


class NoAffinity:
    async def of_reader(self, viewer):
        return {}


class PostRows:
    async def get_many(self, post_ids):
        return {post_id: SimpleNamespace(like_count=0, comment_count=0) for post_id in post_ids}


async def test_a_push_that_lands_while_a_refill_reads_is_in_the_set_the_refill_makes(feed, cache, writer, redis_client):
    """A reader with no candidate set (new, or Redis flushed): the refill reads `feed_items`, a push lands
    (its merge finds no set and is dropped), the refill fills the set. Without the refill's catch-up read
    the post stayed out of the served feed until the next refill, 5 minutes later (the fault run's run 5)."""
    from app.feed.service import FeedService

    reader, author = ids.next_id(), ids.next_id()
    old, new = ids.next_id(), ids.next_id()
    await writer.push([reader], Entry(old, author))
    service = FeedService(feed=feed, writer=writer, cache=cache, follows=Followed(), affinity=NoAffinity(),
                          post_rows=PostRows(), posts=None, rankers=None, ids=ids, cursors=None, rank_window=50)
    read_from_storage = service.refill_from_storage

    async def refill_racing_a_push(viewer):
        refill = await read_from_storage(viewer)
        await writer.push([viewer], Entry(new, author))  # feed_items, then a merge that finds no set
        assert not await redis_client.exists(cache.candidates_key(viewer))
        return refill

    service.refill_from_storage = refill_racing_a_push
    await service._refill(reader, rebuild=False)
    view = await _read(cache, reader)
    assert {c.post_id for c in view.candidates.rows} == {old, new}
