"""What a story tray page costs, read from the API's per-route metrics: at most three round trips to Redis and
Cassandra together for a reader who reads their feed (the reader's `story_tray` partition, their followed
celebrities and affinity from the feed's candidate set in Redis, and the follow check of the page's authors);
without that set (a reader who never opens the feed, or Redis down) the two are read from Cassandra."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.e2e.client.contract import checked_session
from tests.e2e.client.feed import active_reader, read_feed
from tests.e2e.client.likes import like
from tests.e2e.client.posts import post
from tests.e2e.client.stories import post_story, tray, tray_authors
from tests.e2e.client.users import follow, register
from tests.e2e.processes import metrics_url
from tests.e2e.test_metrics import change, scrape
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

TRAY = "GET /v1/stories/tray"


async def measured_tray(http, api_url, reader) -> tuple[list[dict], float, dict[str, float]]:
    """One counted tray page on one connection (one API process), right after a request that leaves the
    reader's session in that process's memory (the session lookup has its own budget, test_sessions.py)."""
    metrics = metrics_url(api_url)
    async with checked_session(connector=aiohttp.TCPConnector(limit=1)) as one:
        async with one.get(f"{api_url}/v1/me", headers=reader.auth) as response:
            assert response.status == 200
        before = await scrape(http, metrics)
        entries = await tray(one, api_url, reader)
        after = await scrape(http, metrics)
    assert change(before, after, "photos_http_request_seconds_count", route=TRAY) == 1
    tables = {dict(labels).get("table") for (name, labels) in after
              if name == "photos_cassandra_requests_total" and dict(labels).get("route") == TRAY}
    by_table = {t: change(before, after, "photos_cassandra_requests_total", route=TRAY, table=t) for t in tables if t}
    by_table = {t: n for t, n in by_table.items() if n}
    redis = change(before, after, "photos_redis_round_trips_total", route=TRAY)
    whole = redis + sum(n for t, n in by_table.items() if t != "sessions")
    print(f"tray of {len(entries)}: {whole:g} round trips (Redis {redis:g}); by table {by_table}")
    return entries, whole, by_table


async def test_a_tray_page_costs_at_most_three_round_trips(http, api_url, redis_client, cass, settings):
    reader = await active_reader(http, api_url)
    near, far = await asyncio.gather(register(http, api_url), register(http, api_url))
    ns = settings.cassandra_keyspace
    await like(http, api_url, reader, await post(http, api_url, near))  # affinity with `near`
    await eventually(lambda: cass.one("SELECT interactions FROM affinity WHERE user_id = %s AND author_id = %s",
                                      (int(reader.id), int(near.id))),
                     lambda row: row is not None and row.interactions == 1, timeout=30)
    # each follow's worker marks the reader's candidate set due for a refill and bumps feedver
    version = int(await redis_client.get(f"{ns}:feedver:{reader.id}") or 0)
    for author in (near, far):
        await follow(http, api_url, reader, author)
    await eventually(lambda: redis_client.get(f"{ns}:feedver:{reader.id}"), lambda v: int(v or 0) >= version + 2,
                     timeout=30)
    await post_story(http, api_url, near)
    await post_story(http, api_url, far)  # newer: without the affinity, `far` would come first
    await eventually(lambda: tray_authors(http, api_url, reader), lambda ids: len(ids) == 2, timeout=30)

    async def refilled() -> tuple[bytes | None, bytes | None]:
        """Read the feed (a due set is refilled), then what the set holds: its refill time and the affinity."""
        await read_feed(http, api_url, reader)
        return await redis_client.hget(f"{ns}:fc:{reader.id}", "t"), await redis_client.hget(f"{ns}:fa:{reader.id}",
                                                                                              near.id)

    await eventually(refilled, lambda found: found[0] not in (None, b"0") and found[1] == b"1", timeout=30)

    for _ in range(3):
        entries, whole, by_table = await measured_tray(http, api_url, reader)
        assert [e["author"]["id"] for e in entries] == [near.id, far.id]  # the affinity came from Redis
        assert whole <= 3, by_table
        assert by_table.get("story_tray") == 1 and "affinity" not in by_table
        assert "followed_celebrities" not in by_table


async def test_without_the_feeds_candidate_set_the_tray_reads_cassandra(http, api_url):
    reader, author = await register(http, api_url), await register(http, api_url)  # never opens the feed
    await follow(http, api_url, reader, author)
    await post_story(http, api_url, author)
    await eventually(lambda: tray_authors(http, api_url, reader), lambda ids: ids == [author.id], timeout=30)
    entries, _whole, by_table = await measured_tray(http, api_url, reader)
    assert [e["author"]["id"] for e in entries] == [author.id]
    assert by_table.get("affinity") == 1 and by_table.get("followed_celebrities") == 1
