"""Trending over HTTP with the real worker: distinct authors trend, one spamming account does not,
deleted posts stop counting. (The ranking is refreshed every `trending_refresh_s`, 30 s by default.)"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.e2e.client.discovery import trending
from tests.e2e.client.posts import post
from tests.e2e.client.users import register
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

REFRESH_WAIT_S = 75.0  # two refresh intervals plus consumer lag, at the production interval (tests use 2 s)


async def test_many_authors_trend_a_spammer_does_not_and_deletes_stop_counting(http, api_url):
    suffix = uuid.uuid4().hex[:10]
    tag, spam = f"party{suffix}", f"cheap{suffix}"
    authors = await asyncio.gather(*(register(http, api_url) for _ in range(3)))
    post_ids = await asyncio.gather(*(post(http, api_url, a, f"tonight #{tag}") for a in authors))
    for _ in range(4):
        await post(http, api_url, authors[0], f"buy now #{spam}")

    ranked = await eventually(lambda: trending(http, api_url, authors[1]), lambda r: tag in r, timeout=REFRESH_WAIT_S)
    assert ranked[tag]["authors"] == 3 and ranked[tag]["posts"] == 3 and ranked[tag]["score"] > 0
    assert spam not in ranked  # one account, however many posts
    # the two windows are stored one after the other by the same refresh
    await eventually(lambda: trending(http, api_url, authors[1], "24h"), lambda r: tag in r, timeout=REFRESH_WAIT_S)

    async with http.delete(f"{api_url}/v1/posts/{post_ids[2]}", headers=authors[2].auth) as response:
        assert response.status == 204, await response.text()
    await eventually(lambda: trending(http, api_url, authors[1]), lambda r: tag not in r, timeout=REFRESH_WAIT_S)


async def test_bad_window_or_limit_is_400(http, api_url):
    viewer = await register(http, api_url)
    for params in ({"window": "7d"}, {"limit": "1000"}):
        async with http.get(f"{api_url}/v1/trending/hashtags", params=params, headers=viewer.auth) as response:
            assert response.status == 400, await response.text()
