"""What a feed page costs, read from the API's per-route metrics while new posts keep arriving (so the
first page is ranked anew from the Redis candidate set almost every time, the normal case): the feed's own
part is one Redis round trip, and no page writes to Cassandra. Hydration (`PostService.hydrate`: posts,
users, likes) and the session lookup are other slices' and are printed separately."""

from __future__ import annotations

import aiohttp
import pytest

from tests.e2e.client.contract import checked_session
from tests.e2e.client.feed import active_reader, read_feed
from tests.e2e.client.posts import post
from tests.e2e.client.users import follow, register
from tests.e2e.processes import metrics_url
from tests.e2e.test_metrics import change, scrape
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

FEED = "GET /v1/feed"
HYDRATION = ("posts", "users", "likes", "post_likers")  # PostService.hydrate's tables, another slice
SESSION = ("sessions",)


def tables(before, after) -> dict[str, float]:
    found = {dict(labels).get("table") for (name, labels) in after
             if name == "photos_cassandra_requests_total" and dict(labels).get("route") == FEED}
    costs = {table: change(before, after, "photos_cassandra_requests_total", route=FEED, table=table)
             for table in found if table}
    return {table: n for table, n in costs.items() if n}


async def measured(http, api_url, reader, **params):
    """One counted page, read on a single connection (so one API process) right after a request that leaves
    the reader's session in that process's memory: the session lookup has its own budget (test_sessions.py)."""
    metrics = metrics_url(api_url)
    async with checked_session(connector=aiohttp.TCPConnector(limit=1)) as one:
        async with one.get(f"{api_url}/v1/me", headers=reader.auth) as response:
            assert response.status == 200
        before = await scrape(http, metrics)
        page, cache = await read_feed(one, api_url, reader, **params)
        after = await scrape(http, metrics)
    assert change(before, after, "photos_http_request_seconds_count", route=FEED) == 1
    by_table = tables(before, after)
    redis = change(before, after, "photos_redis_round_trips_total", route=FEED)
    whole = redis + sum(by_table.values())  # the page's round trips, Redis and Cassandra together
    hydration = sum(n for table, n in by_table.items() if table in HYDRATION)
    print(f"{params or 'ranked first page'} [{cache}]: {whole:g} round trips (Redis {redis:g}), of them "
          f"hydration {hydration:g} Cassandra requests, session {sum(by_table.get(t, 0) for t in SESSION):g}; "
          f"by table {by_table}")
    return page, cache, whole, by_table


async def test_a_feed_page_costs_at_most_three_round_trips_and_writes_nothing(http, api_url, redis_client, settings):
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, reader, author)
    ns = settings.cassandra_keyspace

    async def merged(post_id: str) -> bool:
        return await redis_client.hexists(f"{ns}:fc:{reader.id}", post_id)

    # the follow worker marks the reader's set due for a refill (feedver goes from 1, the first read's
    # rebuild, to 2): the first read after that waits for the refill, a cost of follows, not of pages
    await eventually(lambda: redis_client.get(f"{ns}:feedver:{reader.id}"), lambda v: int(v or 0) >= 2, timeout=30)
    first = await post(http, api_url, author)
    await eventually(lambda: read_feed(http, api_url, reader),
                     lambda r: r[1] == "hit" and [item["id"] for item in r[0]["items"]] == [first], timeout=30)
    for _ in range(4):  # a new post before every read: the page is ranked anew (cold) each time
        post_id = await post(http, api_url, author)
        await eventually(lambda p=post_id: merged(p), bool, timeout=30)
        pages = [
            await measured(http, api_url, reader, limit="1"),  # cold: a push landed since the last read
            await measured(http, api_url, reader, limit="1"),  # warm: the snapshot is reused
        ]
        assert pages[0][1] == "miss" and pages[1][1] == "hit"
        assert pages[0][0]["items"][0]["id"] == post_id  # the newest post, merged in by fan-out, ranks first
        cursor = pages[0][0]["next_cursor"]
        pages.append(await measured(http, api_url, reader, limit="1", cursor=cursor))  # the snapshot's next page
        chrono = await measured(http, api_url, reader, limit="1", order="chronological")
        pages += [chrono, await measured(http, api_url, reader, limit="1", order="chronological",
                                         cursor=chrono[0]["next_cursor"])]
        for _page, _cache, whole, by_table in pages:
            assert whole <= 3, by_table  # the budget of docs/performance.md, session and hydration included
            assert "feed_snapshots" not in by_table and "feed_items" not in by_table  # nothing written
        seen = [item["id"] for page in pages[3:] for item in page[0]["items"]]
        assert seen == sorted(seen, key=int, reverse=True) and len(seen) == 2  # newest first
