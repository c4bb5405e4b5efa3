"""The post and user caches through the API (docs/posts.md#caches): a user grid page within its round-trip
budget while new posts keep arriving, and a deleted post gone from every page at once."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.e2e.client.common import list_all
from tests.e2e.client.contract import checked_session
from tests.e2e.client.feed import feed_ids, until_in_feed
from tests.e2e.client.likes import like
from tests.e2e.client.posts import post, user_posts
from tests.e2e.client.users import follow, register
from tests.e2e.processes import metrics_url
from tests.e2e.test_metrics import change, scrape

pytestmark = pytest.mark.usefixtures("streams_worker")

GRID = "GET /v1/users/{user_id}/posts"
GRID_BUDGET = 2  # round trips to Redis and Cassandra together, per page (issue 14)


def grid_round_trips(before, after) -> float:
    """The grid route's Cassandra requests and Redis round trips. The session lookup (`sessions`) is the
    authentication's, not the page's, and is left out."""
    cassandra = change(before, after, "photos_cassandra_requests_total", route=GRID)
    sessions = change(before, after, "photos_cassandra_requests_total", route=GRID, table="sessions")
    return cassandra - sessions + change(before, after, "photos_redis_round_trips_total", route=GRID)


async def test_a_grid_page_costs_at_most_two_round_trips_while_posts_keep_arriving(http, api_url):
    author, viewer = await asyncio.gather(register(http, api_url), register(http, api_url))
    posted = [await post(http, api_url, author) for _ in range(4)]
    await like(http, api_url, viewer, posted[0])
    metrics = metrics_url(api_url)
    url = f"{api_url}/v1/users/{author.id}/posts"
    for _ in range(2):  # warm-up: both API processes may have to read the timeline once
        async with http.get(url, params={"limit": "3"}, headers=viewer.auth) as response:
            assert response.status == 200

    pages, costs = 6, []
    # one connection, so one API process, which holds the viewer's session in memory from the request just before
    # each counted page: the session lookup has its own budget (tests/e2e/test_sessions.py)
    async with checked_session(connector=aiohttp.TCPConnector(limit=1)) as one:
        for _ in range(pages):
            posted.append(await post(http, api_url, author))  # a new post between reads
            async with one.get(f"{api_url}/v1/me", headers=viewer.auth) as response:
                assert response.status == 200
            before = await scrape(http, metrics)
            async with one.get(url, params={"limit": "3"}, headers=viewer.auth) as response:
                assert response.status == 200
                body = await response.json()
            after = await scrape(http, metrics)
            assert [item["id"] for item in body["items"]] == posted[::-1][:3]  # the new post shows at once
            costs.append(grid_round_trips(before, after))
    print(f"grid page round trips (Redis + Cassandra, sessions left out), one per page: {costs}")
    assert max(costs) <= GRID_BUDGET, costs

    # the later pages (from the cached grid) and liked_by_me are right too
    everything = await list_all(http, api_url, viewer, f"/v1/users/{author.id}/posts", 3)
    assert [item["id"] for item in everything] == posted[::-1]
    assert [item["liked_by_me"] for item in everything] == [item["id"] == posted[0] for item in everything]


async def test_a_deleted_post_leaves_the_grid_the_feed_and_the_hashtag_page_at_once(http, api_url):
    author, reader = await asyncio.gather(register(http, api_url), register(http, api_url))
    await follow(http, api_url, reader, author)
    tag = f"gone{uuid.uuid4().hex[:10]}"
    keep, gone = await post(http, api_url, author, f"#{tag}"), await post(http, api_url, author, f"#{tag}")
    await until_in_feed(http, api_url, reader, gone)

    async def hashtag_ids() -> list[str]:
        return [item["id"] for item in await list_all(http, api_url, reader, f"/v1/hashtags/{tag}/posts", 10)]

    # every page read, so every cache holds the post
    assert [item["id"] for item in await user_posts(http, api_url, reader, author.id)] == [gone, keep]
    assert await hashtag_ids() == [gone, keep]
    async with http.delete(f"{api_url}/v1/posts/{gone}", headers=author.auth) as response:
        assert response.status == 204
    for _ in range(2):  # both API processes
        assert [item["id"] for item in await user_posts(http, api_url, reader, author.id)] == [keep]
        assert gone not in await feed_ids(http, api_url, reader)
        assert gone not in await hashtag_ids()
        async with http.get(f"{api_url}/v1/posts/{gone}", headers=reader.auth) as response:
            assert response.status == 404
