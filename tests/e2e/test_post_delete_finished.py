"""A post delete whose event went out but whose request failed before deleting the row: the post worker
deletes it, so the row does not outlive the feeds and counts that already dropped the post.

Own API, worker, topics and consumer group, so the event is read by this checkout's post worker. The delete
runs in this process, by the real service on the real tables and topics, with a repository whose delete
fails (Cassandra going away right after the publish).
"""

from __future__ import annotations

import os

import pytest

from app.ids import IdGenerator
from app.posts.service import PostService
from app.settings import Settings
from app.storage.posts import PostRepository
from app.wiring import Wiring, cursor_codec
from tests.e2e.client.posts import post, user_posts
from tests.e2e.client.users import get_user, register
from tests.e2e.processes import isolated_api_fixture, isolated_env, start_worker
from tests.support.polling import eventually

DELETE_ENV = isolated_env("postdelete")
delete_api = isolated_api_fixture("postdelete", DELETE_ENV)


@pytest.fixture(scope="module")
def delete_worker(delete_api):
    worker = start_worker("streams-postdelete", DELETE_ENV)
    yield worker
    worker.stop()


class UndeletablePosts(PostRepository):
    """The real post tables, but deleting a post fails: Cassandra went away right after the event."""

    async def delete(self, post) -> None:
        raise OSError("connection lost")


@pytest.fixture
async def failing_posts_service():
    wiring = Wiring(Settings.from_env({**os.environ, **DELETE_ENV}))
    storage, caches = await wiring.storage(), wiring.caches()
    events = await wiring.events()
    await events.wait_connected(30)
    settings = wiring.settings
    yield PostService(
        posts=await UndeletablePosts(storage.cass).prepare(), sweep=storage.media_sweep, users=storage.users,
        store=wiring.media_store(), processor=None, events=events, feed_cache=caches.feed, ids=IdGenerator(),
        cursors=cursor_codec(settings), likes=storage.likes, objects=caches.posts, profiles=caches.users,
        max_caption_length=settings.max_caption_length, max_location_length=settings.max_location_length,
    )
    await wiring.close()


async def test_a_delete_that_failed_after_its_event_is_finished_by_the_post_worker(
    http, delete_api, delete_worker, failing_posts_service, storage
):
    author = await register(http, delete_api)
    post_id = await post(http, delete_api, author)
    await eventually(lambda: get_user(http, delete_api, author, author.id), lambda user: user["post_count"] == 1)

    with pytest.raises(OSError):
        await failing_posts_service.delete(int(author.id), int(post_id))
    assert await storage.posts.get(int(post_id)) is not None  # the request left the row

    await eventually(lambda: storage.posts.get(int(post_id)), lambda row: row is None)
    await eventually(lambda: get_user(http, delete_api, author, author.id), lambda user: user["post_count"] == 0)
    assert await user_posts(http, delete_api, author, author.id) == []
