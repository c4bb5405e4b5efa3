"""Feed writes and the feed cache against the real Cassandra and Redis."""

from __future__ import annotations

import time

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
