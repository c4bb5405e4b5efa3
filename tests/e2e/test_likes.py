"""Likes over HTTP with the real worker: idempotence, races, exact counts, likers, liked_by_me."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.e2e.client.feed import read_feed
from tests.e2e.client.likes import like, like_count, likers
from tests.e2e.client.posts import get_post, post
from tests.e2e.client.users import follow, register
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")


async def test_like_and_unlike_are_idempotent_and_the_reply_counts_the_change(http, api_url):
    author, fan, other = await asyncio.gather(*(register(http, api_url) for _ in range(3)))
    post_id = await post(http, api_url, author)

    assert await like(http, api_url, fan, post_id) == {"liked": True, "like_count": 1}
    assert await like(http, api_url, fan, post_id) == {"liked": True, "like_count": 1}  # a client retry
    assert (await get_post(http, api_url, fan, post_id))["liked_by_me"] is True  # at once: it reads the edge
    assert (await get_post(http, api_url, other, post_id))["liked_by_me"] is False
    await eventually(lambda: like_count(http, api_url, other, post_id), lambda n: n == 1)
    assert await likers(http, api_url, other, post_id) == [fan.id]

    assert await like(http, api_url, fan, post_id, liked=False) == {"liked": False, "like_count": 0}
    assert await like(http, api_url, fan, post_id, liked=False) == {"liked": False, "like_count": 0}
    assert (await get_post(http, api_url, fan, post_id))["liked_by_me"] is False
    await eventually(lambda: like_count(http, api_url, other, post_id), lambda n: n == 0)
    assert await likers(http, api_url, other, post_id) == []


async def test_concurrent_duplicate_likes_count_once(http, api_url):
    author, fan = await register(http, api_url), await register(http, api_url)
    post_id = await post(http, api_url, author)
    replies = await asyncio.gather(*(like(http, api_url, fan, post_id) for _ in range(20)))
    assert all(reply["liked"] for reply in replies)
    assert sorted(reply["like_count"] for reply in replies)[-1] == 1  # exactly one of them changed the edge
    await eventually(lambda: like_count(http, api_url, author, post_id), lambda n: n == 1)
    assert await likers(http, api_url, author, post_id) == [fan.id]


async def test_like_unlike_races_leave_the_count_equal_to_the_likers(http, api_url):
    author = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(12)))
    post_id = await post(http, api_url, author)
    rng = random.Random(5)
    requests = [like(http, api_url, fan, post_id, liked=rng.random() < 0.5) for fan in fans for _ in range(6)]
    rng.shuffle(requests)
    await asyncio.gather(*requests)  # each fan likes and unlikes concurrently with itself
    liked = sorted([fan.id for fan in fans if (await get_post(http, api_url, fan, post_id))["liked_by_me"]])

    async def settled() -> tuple[int, list[str]]:
        return await like_count(http, api_url, author, post_id), sorted(await likers(http, api_url, author, post_id))

    # both at once: between two of the worker's batches the count can equal the final one by chance
    await eventually(settled, lambda found: found == (len(liked), liked))


async def test_likers_are_paged_without_repeats_or_gaps(http, api_url):
    author = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(7)))
    post_id = await post(http, api_url, author)
    await asyncio.gather(*(like(http, api_url, fan, post_id) for fan in fans))
    await eventually(lambda: like_count(http, api_url, author, post_id), lambda n: n == 7)
    paged = await likers(http, api_url, author, post_id, limit=3)
    assert sorted(paged) == sorted(fan.id for fan in fans) and len(paged) == 7


async def test_liked_by_me_in_the_feed_at_once_even_when_the_page_was_cached(http, api_url):
    author, reader = await register(http, api_url), await register(http, api_url)
    await read_feed(http, api_url, reader)  # an active reader gets pushes
    await follow(http, api_url, reader, author)
    liked_id, other_id = await post(http, api_url, author), await post(http, api_url, author)

    async def flags(order: str) -> dict[str, bool]:
        page, _ = await read_feed(http, api_url, reader, order=order)
        return {item["id"]: item["liked_by_me"] for item in page["items"]}

    await eventually(lambda: flags("ranked"), lambda f: liked_id in f and other_id in f)
    # the first page gets cached; the follow's backfill and the two pushes each make it stale, in any
    # order, so wait until a read is served from the cache
    await eventually(lambda: read_feed(http, api_url, reader), lambda read: read[1] == "hit")
    await like(http, api_url, reader, liked_id)
    assert await flags("ranked") == {liked_id: True, other_id: False}
    assert await flags("chronological") == {liked_id: True, other_id: False}


async def test_bad_like_requests_are_refused_and_change_nothing(http, api_url):
    author, fan = await register(http, api_url), await register(http, api_url)
    post_id = await post(http, api_url, author)
    for bad in ("999999999999", "not-a-number", "-1"):
        async with http.put(f"{api_url}/v1/posts/{bad}/like", headers=fan.auth) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "post_not_found"
    async with http.put(f"{api_url}/v1/posts/{post_id}/like") as response:
        assert response.status == 401
    async with http.get(f"{api_url}/v1/posts/{post_id}/likes", params={"cursor": "garbage"},
                        headers=fan.auth) as response:
        assert response.status == 400
    async with http.get(f"{api_url}/v1/posts/{post_id}/likes", params={"limit": "0"}, headers=fan.auth) as response:
        assert response.status == 400
    async with http.get(f"{api_url}/v1/posts/999999999999/likes", headers=fan.auth) as response:
        assert response.status == 404
    assert (await get_post(http, api_url, fan, post_id))["liked_by_me"] is False
    assert await likers(http, api_url, fan, post_id) == []


async def test_a_likers_cursor_is_bound_to_its_post(http, api_url):
    author = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(3)))
    first, second = await post(http, api_url, author), await post(http, api_url, author)
    await asyncio.gather(*(like(http, api_url, fan, first) for fan in fans))
    await eventually(lambda: like_count(http, api_url, author, first), lambda n: n == 3)
    async with http.get(f"{api_url}/v1/posts/{first}/likes", params={"limit": "1"}, headers=author.auth) as response:
        cursor = (await response.json())["next_cursor"]
    assert cursor
    async with http.get(f"{api_url}/v1/posts/{second}/likes", params={"cursor": cursor},
                        headers=author.auth) as response:
        assert response.status == 400
