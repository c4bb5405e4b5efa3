"""Stories expire by Cassandra TTL: with a short configured TTL (never by waiting 24 h), a story, its
views, its viewers, its count and its tray entries all disappear on their own, and the sweeper
removes its media.

Own API and worker (story_ttl_s = 15 s, a story sweep every second), own topics and consumer group.
The TTL leaves the worker time to push and count the story before it expires, even on a busy machine.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from app.storage.stories import EXPIRY_SHARDS, expiry_minute
from tests.e2e.client.stories import post_story, tray, user_stories, view, view_count, viewers
from tests.e2e.client.users import follow, register
from tests.e2e.processes import isolated_api, isolated_env, start_worker
from tests.support.polling import eventually

TTL_S = 15
TTL_ENV = isolated_env("storyttl", PHOTOS_STORY_TTL_S=str(TTL_S), PHOTOS_STORY_SWEEP_INTERVAL_S="1")

STORY_TABLES = [
    ("stories", "author_id = %s AND story_id = %s", "author"),
    ("stories_by_id", "story_id = %s", None),
    ("story_views", "story_id = %s AND viewer_id = %s", "viewer"),
    ("story_viewers", "story_id = %s AND bucket = 0", None),
    ("story_viewer_buckets", "story_id = %s", None),
    ("story_tray", "reader_id = %s AND author_id = %s", "tray"),
]


@pytest.fixture(scope="module")
def ttl_api(migrated):
    with isolated_api("storyttl", TTL_ENV) as url:
        worker = start_worker("streams-storyttl", TTL_ENV)
        try:
            yield url
        finally:
            worker.stop()


async def rows_left(cass, author_id: int, story_id: int, viewer_id: int) -> dict[str, int]:
    left = {}
    for table, where, kind in STORY_TABLES:
        if kind == "author":
            params = (author_id, story_id)
        elif kind == "viewer":
            params = (story_id, viewer_id)
        elif kind == "tray":
            params = (viewer_id, author_id)
        else:
            params = (story_id,)
        left[table] = len((await cass.execute(f"SELECT * FROM {table} WHERE {where}", params)).current_rows)
    return left


async def media_status(http, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def test_everything_of_a_story_expires_with_it_and_the_sweeper_removes_its_media(http, ttl_api, cass):
    author, fan = await register(http, ttl_api), await register(http, ttl_api)
    await follow(http, ttl_api, fan, author)
    story = await post_story(http, ttl_api, author)
    story_id = story["id"]
    assert await view(http, ttl_api, fan, story_id) == 204
    # live: listed, in the tray, viewed, counted (the worker is quick; the TTL is short)
    assert [s["id"] for s in await user_stories(http, ttl_api, fan, author.id)] == [story_id]
    await eventually(lambda: tray(http, ttl_api, fan), lambda t: len(t) == 1, timeout=TTL_S - 1)
    await eventually(lambda: view_count(http, ttl_api, author, story_id), lambda n: n == 1, timeout=TTL_S - 1)
    assert await viewers(http, ttl_api, author, story_id) == [fan.id]
    ids = (int(author.id), int(story_id), int(fan.id))
    assert all((await rows_left(cass, *ids)).values())
    urls = [variant["url"] for variant in story["media"].values()]
    assert {await media_status(http, u) for u in urls} == {200}

    # expired: gone everywhere, with nothing deleting it
    await eventually(lambda: user_stories(http, ttl_api, fan, author.id), lambda s: s == [], timeout=TTL_S + 10)
    assert await tray(http, ttl_api, fan) == []
    assert await view(http, ttl_api, fan, story_id) == 404
    async with http.get(f"{ttl_api}/v1/stories/{story_id}/viewers", headers=author.auth) as response:
        assert response.status == 404
    # the rows' own TTLs count whole seconds from each write, so they may outlive the endpoints by up to two
    # seconds (app/storage/stories.py row_ttl_s)
    none_left = {table: 0 for table, _, _ in STORY_TABLES}
    await eventually(lambda: rows_left(cass, *ids), lambda left: left == none_left, timeout=5, interval=0.2)
    # and its media is swept (every second here; every minute by default)
    await eventually(lambda: asyncio.gather(*(media_status(http, u) for u in urls)),
                     lambda statuses: set(statuses) == {404}, timeout=20)
    expires_at = datetime.fromisoformat(story["expires_at"].replace("Z", "+00:00"))
    place = (expiry_minute(expires_at), int(story_id) % EXPIRY_SHARDS, int(story_id))
    query = "SELECT story_id FROM story_media_expiry WHERE minute = %s AND shard = %s AND story_id = %s"
    # the sweeper's record is settled too: deleted right after the media, so a moment after the last 404
    await eventually(lambda: cass.one(query, place), lambda row: row is None, timeout=10, interval=0.2)
