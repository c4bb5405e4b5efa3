"""The ranking log end to end (docs/ranking.md#the-ranking-log): an API of its own logging every ranked snapshot
(sample 1) and the session's stream worker. What a ranked feed served lands in `feed_impressions` with its
positions, ranker and features; likes, comments and comment opens land in `feed_engagements`, acting on your own
post does not; and an API sampling nothing logs nothing."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from app.ranking.features import FEATURE_VERSION, FEATURES
from app.storage.ranking_log import day_of, shard_of
from tests.e2e.client.comments import comment
from tests.e2e.client.feed import active_reader, until_in_feed
from tests.e2e.client.likes import like
from tests.e2e.client.posts import post
from tests.e2e.client.users import Account, follow, register
from tests.e2e.processes import metrics_url, start_api
from tests.e2e.test_metrics import scrape, total
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

WAIT_S = 60.0  # the worker's batches wait up to 2 s; a first run also joins the group


@pytest.fixture(scope="module")
def logging_api(migrated):
    """An API that logs every ranked snapshot."""
    process, url = start_api("api-ranking-log", {"PHOTOS_RANKING_IMPRESSION_SAMPLE": "1"})
    yield url
    process.stop()


@pytest.fixture(scope="module")
def silent_api(migrated):
    """An API that logs no ranked snapshot."""
    process, url = start_api("api-ranking-log-off", {"PHOTOS_RANKING_IMPRESSION_SAMPLE": "0"})
    yield url
    process.stop()


async def ranked_pages(http, api_url, reader: Account, limit: int) -> tuple[list[str], set[str]]:
    """Every post id of the reader's ranked feed, page by page, and the X-Feed-Ranker headers seen."""
    ids, rankers, cursor = [], set(), None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}/v1/feed", params=params, headers=reader.auth) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
            rankers.add(response.headers.get("X-Feed-Ranker"))
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, rankers


async def open_comments(http, api_url, reader: Account, post_id: str) -> None:
    async with http.get(f"{api_url}/v1/posts/{post_id}/comments", params={"limit": "5"},
                        headers=reader.auth) as response:
        assert response.status == 200, await response.text()


def days_since(started_ms: int) -> list[int]:
    """The days rows of this test can be placed in (two when it runs across midnight UTC)."""
    return sorted({day_of(started_ms), day_of(int(time.time() * 1000))})


async def impressions_of(storage, settings, reader: Account, days: list[int]) -> list:
    reader_id = int(reader.id)
    shard = shard_of(reader_id, settings.ranking_log_shards)
    return [row for day in days async for page in storage.ranking_log.impressions(day, shard, reader_id)
            for row in page]


async def engagements_of(storage, settings, reader: Account, days: list[int]) -> set[tuple[str, str]]:
    reader_id = int(reader.id)
    shard = shard_of(reader_id, settings.ranking_log_shards)
    return {(str(row.post_id), row.kind) for day in days
            async for page in storage.ranking_log.engagements(day, shard, reader_id) for row in page}


async def test_a_ranked_feed_and_what_the_reader_did_are_logged_and_acting_on_your_own_post_is_not(
    http, logging_api, storage, settings
):
    api, started_ms = logging_api, int(time.time() * 1000)
    author = await register(http, api)
    reader = await active_reader(http, api)  # its feed opened (empty: no page to log), so fan-out pushes to it
    await follow(http, api, reader, author)
    posts = [await post(http, api, author) for _ in range(3)]
    for post_id in posts:
        await until_in_feed(http, api, reader, post_id)  # newest first: never logged

    served, rankers = await ranked_pages(http, api, reader, limit=2)  # two pages of one snapshot
    assert sorted(served) == sorted(posts) and rankers == {"formula"}

    def one_snapshot_served(rows: list) -> bool:
        by_request = defaultdict(list)
        for row in rows:
            by_request[row.request_id].append(row)
        return any([(r.position, str(r.post_id)) for r in snapshot] == list(enumerate(served))
                   for snapshot in by_request.values())

    rows = await eventually(lambda: impressions_of(storage, settings, reader, days_since(started_ms)),
                            one_snapshot_served, timeout=WAIT_S, interval=0.5)
    for row in rows:
        assert (row.ranker, row.feature_version, row.author_id) == ("formula", FEATURE_VERSION, int(author.id))
        assert len(row.features) == len(FEATURES) and row.features[0] >= 0.0  # age_hours
        assert started_ms <= row.served_ms <= int(time.time() * 1000)

    # the author's own acts come first on each post's partition, so once the reader's are logged they were read
    await like(http, api, author, posts[0])
    await like(http, api, reader, posts[0])
    await comment(http, api, author, posts[1], "thanks all")
    await comment(http, api, reader, posts[1])
    await open_comments(http, api, reader, posts[2])
    await like(http, api, reader, posts[0], liked=False)  # an unlike removes nothing
    expected = {(posts[0], "like"), (posts[1], "comment"), (posts[2], "open")}
    await eventually(lambda: engagements_of(storage, settings, reader, days_since(started_ms)),
                     lambda got: got == expected, timeout=WAIT_S, interval=0.5)

    own = await post(http, api, reader)  # the reader likes its own post, then the author likes it after
    await like(http, api, reader, own)
    await like(http, api, author, own)
    await eventually(lambda: engagements_of(storage, settings, author, days_since(started_ms)),
                     lambda got: got == {(own, "like")}, timeout=WAIT_S, interval=0.5)
    assert await engagements_of(storage, settings, reader, days_since(started_ms)) == expected


async def test_an_api_sampling_nothing_logs_no_impression(http, silent_api, storage, settings):
    api, started_ms = silent_api, int(time.time() * 1000)
    author = await register(http, api)
    reader = await active_reader(http, api)
    await follow(http, api, reader, author)
    post_id = await post(http, api, author)
    await until_in_feed(http, api, reader, post_id)
    served, rankers = await ranked_pages(http, api, reader, limit=1)
    assert served == [post_id] and rankers == {"formula"}  # ranked, so it would have been logged if sampled

    # the comment open goes out after the feed reads, on the same counter and to the same worker: once it is
    # counted and logged, an impression of those reads would have been too
    await open_comments(http, api, reader, post_id)
    samples = await eventually(lambda: scrape(http, metrics_url(api)),
                               lambda s: total(s, "photos_ranking_events_total", kind="comment_opens") >= 1,
                               timeout=WAIT_S, interval=0.2)
    assert total(samples, "photos_ranking_events_total", kind="comment_opens", outcome="published") == 1
    assert total(samples, "photos_ranking_events_total", kind="impressions") == 0
    await eventually(lambda: engagements_of(storage, settings, reader, days_since(started_ms)),
                     lambda got: got == {(post_id, "open")}, timeout=WAIT_S, interval=0.5)
    assert await impressions_of(storage, settings, reader, days_since(started_ms)) == []
