"""Likes when Redis forgets or is gone, over HTTP with the real worker: the replies' counts may be off for a
moment, but every like lands on its edge and the stored counts and likers end exact (docs/likes.md)."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.client.likes import like, like_count, likers
from tests.e2e.client.posts import get_post, post
from tests.e2e.client.users import register
from tests.e2e.processes import isolated_api_fixture, isolated_env, start_worker
from tests.support.polling import eventually

DOWN_ENV = isolated_env("likeredisdown")
# the API's Redis is a port nobody listens on; the worker's is the real one (it only settles counts there)
redis_down_api = isolated_api_fixture("likeredisdown", {**DOWN_ENV, "PHOTOS_REDIS_URL": "redis://127.0.0.1:1/0"})


async def liked_by(http, api_url, fans, post_id) -> list[str]:
    flags = await asyncio.gather(*(get_post(http, api_url, fan, post_id) for fan in fans))
    return sorted(fan.id for fan, body in zip(fans, flags, strict=True) if body["liked_by_me"])


async def settled(http, api_url, viewer, post_id) -> tuple[int, list[str]]:
    return await like_count(http, api_url, viewer, post_id), sorted(await likers(http, api_url, viewer, post_id))


@pytest.mark.usefixtures("streams_worker")
async def test_after_redis_loses_a_posts_keys_the_counts_end_exact(http, api_url, redis_client, settings):
    author = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(3)))
    post_id = await post(http, api_url, author)
    await asyncio.gather(*(like(http, api_url, fan, post_id) for fan in fans))
    await eventually(lambda: settled(http, api_url, author, post_id), lambda s: s == (3, sorted(f.id for f in fans)))

    # Redis loses what it knew of the post: who liked it lately, and the reply's count
    keys = [key async for key in redis_client.scan_iter(match=f"{settings.cassandra_keyspace}:likes:{post_id}*")]
    assert len(keys) == 4
    await redis_client.delete(*keys)
    # a retried like (Redis cannot tell it from a first one), an unlike, and an unlike retried
    assert (await like(http, api_url, fans[0], post_id))["liked"] is True
    assert (await like(http, api_url, fans[1], post_id, liked=False))["liked"] is False
    assert (await like(http, api_url, fans[1], post_id, liked=False))["liked"] is False

    wanted = sorted([fans[0].id, fans[2].id])
    await eventually(lambda: settled(http, api_url, author, post_id), lambda s: s == (2, wanted))
    assert await liked_by(http, api_url, fans, post_id) == wanted
    # the worker put the exact count back into Redis; from there a change Redis knows of counts exactly again
    count_key = f"{settings.cassandra_keyspace}:likes:{post_id}"
    await eventually(lambda: redis_client.get(count_key), lambda n: n == b"2")
    assert await like(http, api_url, fans[1], post_id) == {"liked": True, "like_count": 3}


async def test_with_redis_down_likes_land_and_count_exactly(http, redis_down_api):
    worker = start_worker("streams-likeredisdown", DOWN_ENV)
    try:
        author = await register(http, redis_down_api)
        fans = await asyncio.gather(*(register(http, redis_down_api) for _ in range(5)))
        post_id = await post(http, redis_down_api, author)
        replies = await asyncio.gather(*(like(http, redis_down_api, fan, post_id) for fan in fans))
        assert all(reply["liked"] for reply in replies)  # the counts are the stored one plus one: no Redis
        await like(http, redis_down_api, fans[0], post_id, liked=False)
        await like(http, redis_down_api, fans[1], post_id)  # a retry: no dedupe without Redis, the edge says once
        wanted = sorted(fan.id for fan in fans[1:])
        assert await liked_by(http, redis_down_api, fans, post_id) == wanted  # at once: they read the edges
        await eventually(lambda: settled(http, redis_down_api, author, post_id), lambda s: s == (4, wanted),
                         timeout=60)
    finally:
        worker.stop()
