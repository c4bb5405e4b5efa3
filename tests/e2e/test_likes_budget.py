"""What a like and an unlike cost, read from the API's per-route metrics (docs/metrics.md): at most three round
trips to Redis and Cassandra together, beside the session lookup (the sessions' own budget), and one edge write."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.e2e.client.contract import checked_session
from tests.e2e.client.likes import like
from tests.e2e.client.posts import post
from tests.e2e.client.users import register
from tests.e2e.processes import metrics_url
from tests.e2e.test_metrics import change, scrape

pytestmark = pytest.mark.usefixtures("streams_worker")

ROUTES = {True: "PUT /v1/posts/{post_id}/like", False: "DELETE /v1/posts/{post_id}/like"}


async def test_a_like_or_unlike_costs_at_most_three_round_trips(http, api_url, settings):
    author, fan = await asyncio.gather(register(http, api_url), register(http, api_url))
    post_id, warm_up = await post(http, api_url, author), await post(http, api_url, author)
    await like(http, api_url, author, warm_up)  # Redis has the script (a first EVALSHA may have to load it)
    metrics = metrics_url(api_url)
    # one connection, so one API process: the session lookup has its own budget (tests/e2e/test_sessions.py),
    # and the token looked up just before each like is in that process's memory when the like is counted
    async with checked_session(connector=aiohttp.TCPConnector(limit=1)) as one:
        for liked in (True, True, False, False, True):  # first ones, retries, and a change back
            async with one.get(f"{api_url}/v1/me", headers=fan.auth) as response:
                assert response.status == 200
            before = await scrape(http, metrics)
            await like(one, api_url, fan, post_id, liked=liked)
            after = await scrape(http, metrics)
            check(before, after, liked)


def check(before, after, liked: bool) -> None:
    """The like's own costs: at most 3 round trips, no LWT (one plain edge write), one event."""
    route = ROUTES[liked]
    cassandra = change(before, after, "photos_cassandra_requests_total", route=route)
    sessions = change(before, after, "photos_cassandra_requests_total", route=route, table="sessions")
    redis = change(before, after, "photos_redis_round_trips_total", route=route)
    assert cassandra - sessions + redis <= 3, (cassandra, sessions, redis)
    # the post, the edge (one blind write), one Redis script (rate limit, dedupe, count), one event
    assert change(before, after, "photos_cassandra_requests_total", route=route, table="posts") == 1
    assert change(before, after, "photos_cassandra_requests_total", route=route, table="likes") == 1
    assert redis == 1
    assert change(before, after, "photos_kafka_messages_total", route=route) == 1
