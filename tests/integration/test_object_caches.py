"""The post and user caches (app/storage/post_cache.py, user_cache.py) on real Redis and Cassandra, through
the services that read and invalidate them: pages served from the cache, deletes and profile edits that
show at once, grids kept by creates and deletes, and Redis lost (pages read from Cassandra)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import pytest

from app.auth import Passwords, SessionStore
from app.cursors import CursorCodec
from app.errors import NotFound
from app.ids import IdGenerator
from app.media.store import LocalMediaStore
from app.metrics import CountingRedis
from app.posts.service import PostService
from app.storage.post_cache import PostCache
from app.users.service import UserService
from app.wiring import Caches
from infra.procs import free_port
from streams.comment_counts import CommentCounter

ids = IdGenerator()


@pytest.fixture
async def redis(settings):
    client = CountingRedis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    yield client
    await client.aclose()


@pytest.fixture
async def dead_redis():
    """A client of a port nothing listens on: Redis lost."""
    client = CountingRedis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5,
                                    socket_connect_timeout=0.5)
    yield client
    await client.aclose()


def services(settings, storage, redis, store, events=None, **overrides) -> tuple[PostService, UserService, Caches]:
    caches = Caches.for_settings(dataclasses.replace(settings, **overrides), redis)
    cursors = CursorCodec("test")
    posts = PostService(
        posts=storage.posts, sweep=storage.media_sweep, users=storage.users, store=store, processor=None,
        events=events, feed_cache=caches.feed, ids=ids, cursors=cursors, likes=storage.likes, objects=caches.posts,
        profiles=caches.users, max_caption_length=2200, max_location_length=100,
    )
    users = UserService(
        users=storage.users, follows=storage.follows, sessions=SessionStore(storage.sessions, 60),
        passwords=Passwords(1, 8192), events=events, feed_cache=caches.feed, profiles=caches.users, ids=ids,
        cursors=cursors, max_following=10,
    )
    return posts, users, caches


@pytest.fixture
def store(tmp_path):
    return LocalMediaStore(tmp_path, "http://api.test")


async def new_user(storage, display_name: str = "Someone") -> int:
    user_id = ids.next_id()
    await storage.users.insert(user_id, f"u{user_id}", display_name, "x", datetime.now(UTC))
    return user_id


async def new_post(storage, author: int, caption: str = "hello", hashtags=()) -> int:
    post_id = ids.next_id()
    await storage.posts.insert(post_id, author, caption, list(hashtags), [], "", None,
                               {"thumbnail": (f"p/{post_id}/t.jpg", 4, 3)}, "", datetime.now(UTC))
    return post_id


def item_ids(items: list[dict]) -> list[int]:
    return [int(item["id"]) for item in items]


async def test_a_grid_page_is_served_from_the_cache_once_read(settings, storage, redis, store):
    posts, _, caches = services(settings, storage, redis, store)
    author, viewer = await new_user(storage), await new_user(storage)
    created = [await new_post(storage, author) for _ in range(5)]

    first, cursor = await posts.list_by_user(author, viewer, 3, None)  # a miss: timeline read, grid stored
    assert item_ids(first) == created[::-1][:3] and cursor is not None
    grid = await caches.posts.read_grid(author, None, 3)
    assert grid.ids == created[::-1][:3] and not grid.found.missing  # ids, posts and counts all cached
    assert grid.owner.username == f"u{author}"
    # the next page from the cached grid too (it holds all five: the floor is 0)
    second, cursor = await posts.list_by_user(author, viewer, 3, cursor)
    assert item_ids(second) == created[::-1][3:] and cursor is None
    assert (await caches.posts.read_grid(author, created[2], 3)).ids == created[:2][::-1]


async def test_a_deleted_post_is_never_served_even_from_a_page_read_before_the_delete(
    settings, storage, redis, store, events
):
    posts, _, caches = services(settings, storage, redis, store, events)
    author, viewer = await new_user(storage), await new_user(storage)
    tag = f"t{ids.next_id()}"
    keep, gone = await new_post(storage, author, hashtags=[tag]), await new_post(storage, author, hashtags=[tag])
    await posts.list_by_user(author, viewer, 10, None)  # grid, objects and counts cached
    stale_row = await storage.posts.get(gone)

    await posts.delete(author, gone)
    assert item_ids((await posts.list_by_user(author, viewer, 10, None))[0]) == [keep]
    with pytest.raises(NotFound):
        await posts.get(gone, viewer)
    # a reader that read the row before the delete fills it after: the tombstone wins
    await caches.posts.fill([stale_row])
    assert item_ids(await posts.hydrate([gone, keep], viewer)) == [keep]  # a feed or hashtag page's ids
    # a grid read from the timeline before the delete cannot be stored after it
    assert not await caches.posts.store_grid(author, "0", [gone, keep], complete=True)
    assert item_ids((await posts.list_by_user(author, viewer, 10, None))[0]) == [keep]


async def test_creates_keep_a_cached_grid_current_and_its_version_refuses_older_fills(settings, storage, redis, store):
    posts, _, caches = services(settings, storage, redis, store, grid_cache_ids=2)
    author, viewer = await new_user(storage), await new_user(storage)
    created = [await new_post(storage, author) for _ in range(3)]
    before = await caches.posts.read_grid(author, None, 2)
    assert before.ids is None  # nothing cached yet
    await posts.list_by_user(author, viewer, 2, None)  # caches the newest 2: the floor is the second
    assert (await caches.posts.read_grid(author, None, 3)).ids is None  # the third is below the floor

    for _ in range(3):  # as PostService.create does once the rows are written
        created.append(await new_post(storage, author))
        await caches.posts.note_created(await storage.posts.get(created[-1]))
        assert (await caches.posts.read_grid(author, None, 2)).ids == created[::-1][:2]
    # at most twice grid_cache_ids kept: the floor rose to the fourth newest
    assert (await caches.posts.read_grid(author, None, 4)).ids == created[::-1][:4]
    assert (await caches.posts.read_grid(author, None, 5)).ids is None
    assert item_ids((await posts.list_by_user(author, viewer, 6, None))[0]) == created[::-1]
    # a grid read before a create is not stored after it
    version = (await caches.posts.read_grid(author, None, 1)).version
    created.append(await new_post(storage, author))
    await caches.posts.note_created(await storage.posts.get(created[-1]))
    assert not await caches.posts.store_grid(author, version, created[:-1][::-1], complete=True)
    assert (await caches.posts.read_grid(author, None, 1)).ids == [created[-1]]


async def test_counts_come_from_the_workers_keys_not_the_cached_row(settings, storage, redis, store):
    posts, _, caches = services(settings, storage, redis, store)
    author, viewer = await new_user(storage), await new_user(storage)
    post_id = await new_post(storage, author)
    assert (await posts.get(post_id, viewer))["comment_count"] == 0  # cached with its counts
    await caches.posts.save_comment_counts({post_id: 3})  # the comment worker's recount
    await caches.posts.save_like_counts({post_id: 7})  # the like worker's
    shown = await posts.get(post_id, viewer)
    assert (shown["like_count"], shown["comment_count"]) == (7, 3)
    # a count key gone (expired, evicted): the row is read again, not the cached copy trusted
    await storage.posts.save_comment_count(post_id, 4, int(time.time() * 1_000_000))
    await redis.delete(caches.posts.comments_key(post_id))
    assert (await posts.get(post_id, viewer))["comment_count"] == 4


async def test_the_comment_worker_writes_the_counts_pages_read(settings, storage, redis):
    caches = Caches.for_settings(settings, redis)
    counter = CommentCounter(storage.comments, storage.posts, caches.posts)
    post_id = ids.next_id()
    await counter.cache.save_comment_counts({post_id: 2})
    assert await redis.get(caches.posts.comments_key(post_id)) == b"2"


async def test_a_profile_edit_shows_at_once(settings, storage, redis, store, events):
    posts, users, caches = services(settings, storage, redis, store, events)
    author = await new_user(storage, "Before")
    stale_row = await storage.users.get(author)
    assert (await posts._authors({author}, cached=True))[author].display_name == "Before"  # now cached

    await users.update_profile(author, "After", None)
    assert (await posts._authors({author}, cached=True))[author].display_name == "After"
    await caches.users.fill([stale_row])  # a reader that read the row before the edit
    assert (await caches.users.get_many([author])) == {}  # cannot fill over the edit's marker
    assert (await posts._authors({author}, cached=True))[author].display_name == "After"


async def test_with_redis_lost_pages_are_read_from_cassandra(settings, storage, dead_redis, store, events):
    posts, users, caches = services(settings, storage, dead_redis, store, events)
    author, viewer = await new_user(storage), await new_user(storage)
    created = [await new_post(storage, author) for _ in range(3)]
    started = time.monotonic()
    page, cursor = await posts.list_by_user(author, viewer, 2, None)
    assert item_ids(page) == created[::-1][:2] and page[0]["author"]["username"] == f"u{author}"
    assert item_ids((await posts.list_by_user(author, viewer, 2, cursor))[0]) == created[:1]
    assert item_ids(await posts.hydrate(created, viewer)) == created
    # deletes and edits still work; the breaker keeps Redis's timeout off every later call
    await posts.delete(author, created[0])
    with pytest.raises(NotFound):
        await posts.get(created[0], viewer)
    assert (await users.update_profile(author, "New", None))["display_name"] == "New"
    assert time.monotonic() - started < 3
    assert not caches.posts.available


async def test_post_cache_keys_are_namespaced_by_the_keyspace(settings, redis):
    caches = Caches.for_settings(settings, redis)
    assert isinstance(caches.posts, PostCache)
    assert caches.posts.post_key(1).startswith(f"{settings.cassandra_keyspace}:")
    assert caches.posts.likes_key(1) != caches.like_counts.key(1)  # the worker's count, not the replies'
