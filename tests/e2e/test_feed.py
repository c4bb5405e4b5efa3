"""The home feed through the real API, Kafka and stream worker (tests/conftest.py: 4 followers make a
celebrity and a ranked snapshot holds 8 posts, so these tests cross both lines)."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.client.feed import active_reader, feed_ids, read_feed, until_in_feed
from tests.e2e.client.posts import post
from tests.e2e.client.users import follow, register, unfollow
from tests.e2e.stored import is_celebrity, pushed
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")


async def test_a_post_reaches_its_authors_followers_and_only_them(http, api_url, cass):
    author, stranger = await register(http, api_url), await active_reader(http, api_url)
    followers = [await active_reader(http, api_url) for _ in range(2)]
    for reader in followers:
        await follow(http, api_url, reader, author)
    post_id = await post(http, api_url, author, "hello followers")
    for reader in followers:
        await until_in_feed(http, api_url, reader, post_id)
        assert await pushed(cass, reader, post_id)  # written by fan-out, not pulled
        (page, _) = await read_feed(http, api_url, reader)
        item = next(item for item in page["items"] if item["id"] == post_id)
        assert item["author"] == {"id": author.id, "username": author.username}
        assert item["caption"] == "hello followers" and item["media"]["thumbnail"]["url"]
        assert item["like_count"] == 0 and item["liked_by_me"] is False
    assert post_id not in await feed_ids(http, api_url, stranger)
    assert not await pushed(cass, stranger, post_id)
    assert post_id not in await feed_ids(http, api_url, author)  # the home feed holds followed accounts only


async def test_a_reader_who_is_away_gets_no_push_and_a_rebuilt_feed_on_return(http, api_url, cass):
    author, active = await register(http, api_url), await active_reader(http, api_url)
    away = await register(http, api_url)  # has never opened the feed
    await follow(http, api_url, away, author)
    await follow(http, api_url, active, author)
    post_id = await post(http, api_url, author)
    await until_in_feed(http, api_url, active, post_id)  # fan-out has handled the post
    assert not await pushed(cass, away, post_id)
    page, cache = await read_feed(http, api_url, away)  # the first read rebuilds, then serves
    assert [item["id"] for item in page["items"]] == [post_id]
    assert cache == "miss"
    assert await pushed(cass, away, post_id)


async def test_follow_copies_recent_posts_in_and_unfollow_takes_them_out(http, api_url, cass):
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    older, newer = await post(http, api_url, author), await post(http, api_url, author)
    await follow(http, api_url, reader, author)
    await eventually(lambda: feed_ids(http, api_url, reader), lambda ids: ids == [newer, older], timeout=30)
    await read_feed(http, api_url, reader)  # cached
    await unfollow(http, api_url, reader, author)
    for order in ("ranked", "chronological"):  # at once, cached page included
        page, _ = await read_feed(http, api_url, reader, order=order)
        assert page["items"] == []
    await eventually(lambda: pushed(cass, reader, newer), lambda present: not present, timeout=30)  # cleaned up


async def test_a_deleted_post_leaves_every_feed_at_once(http, api_url, cass):
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, reader, author)
    kept, doomed = await post(http, api_url, author), await post(http, api_url, author)
    await until_in_feed(http, api_url, reader, doomed)
    page, _ = await read_feed(http, api_url, reader)  # caches the first page, doomed post included
    assert doomed in [item["id"] for item in page["items"]]
    async with http.delete(f"{api_url}/v1/posts/{doomed}", headers=author.auth) as response:
        assert response.status == 204
    for order in ("ranked", "chronological"):  # no waiting: filtered at read time, cached page included
        page, _ = await read_feed(http, api_url, reader, order=order)
        assert [item["id"] for item in page["items"]] == [kept]
    await eventually(lambda: pushed(cass, reader, doomed), lambda present: not present, timeout=30)  # cleaned up


async def test_a_celebrity_is_pulled_at_read_time_and_pushed_again_below_the_line(http, api_url, cass):
    celebrity = await register(http, api_url)
    fans = [await active_reader(http, api_url) for _ in range(4)]
    earlier = await post(http, api_url, celebrity)  # pushed to nobody yet: copied in on follow
    for fan in fans:
        await follow(http, api_url, fan, celebrity)
    await eventually(lambda: is_celebrity(cass, celebrity), bool, timeout=30)
    pulled = await post(http, api_url, celebrity)
    for fan in fans:
        await until_in_feed(http, api_url, fan, pulled)
    # a later post by an ordinary author reaches fans[0] by push: the celebrity's post was handled before it
    ordinary = await register(http, api_url)
    await follow(http, api_url, fans[0], ordinary)
    await eventually(lambda: feed_ids(http, api_url, fans[0]), lambda ids: pulled in ids, timeout=30)
    marker = await post(http, api_url, ordinary)
    await eventually(lambda: pushed(cass, fans[0], marker), bool, timeout=30)
    assert not any([await pushed(cass, fan, pulled) for fan in fans])
    for fan in fans:  # copied in on follow, or pulled: the fourth follow may have made the author a celebrity first
        assert earlier in await feed_ids(http, api_url, fan)

    # two fans leave: 2 followers is under 90% of 4, so the remaining fans get the posts pushed
    for fan in fans[:2]:
        await unfollow(http, api_url, fan, celebrity)
    await eventually(lambda: is_celebrity(cass, celebrity), lambda still: not still, timeout=30)
    for fan in fans[2:]:
        await eventually(lambda f=fan: pushed(cass, f, pulled), bool, timeout=30)
        assert await feed_ids(http, api_url, fan) == [pulled, earlier]
    for fan in fans[:2]:
        await eventually(lambda f=fan: feed_ids(http, api_url, f), lambda ids: pulled not in ids, timeout=30)


async def test_paging_while_posts_arrive_neither_repeats_nor_skips(http, api_url, cass):
    """Across the push/pull merge: the reader follows an ordinary author and a celebrity."""
    ordinary, celebrity = await register(http, api_url), await register(http, api_url)
    reader = await active_reader(http, api_url)
    for fan in [reader] + [await active_reader(http, api_url) for _ in range(3)]:
        await follow(http, api_url, fan, celebrity)
    await follow(http, api_url, reader, ordinary)
    await eventually(lambda: is_celebrity(cass, celebrity), bool, timeout=30)
    existing = []
    for _ in range(7):  # 14 posts: more than a ranked snapshot holds (8), so paging crosses into the tail
        existing += [await post(http, api_url, ordinary), await post(http, api_url, celebrity)]
    await eventually(lambda: feed_ids(http, api_url, reader), lambda ids: set(existing) <= set(ids), timeout=30)

    for order in ("ranked", "chronological"):
        seen, cursor, arrived = [], None, []
        while True:
            params = {"limit": "3", "order": order} | ({"cursor": cursor} if cursor else {})
            page, _ = await read_feed(http, api_url, reader, **params)
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            arrived += [await post(http, api_url, ordinary), await post(http, api_url, celebrity)]
            await until_in_feed(http, api_url, reader, arrived[-2])  # pushed before the next page is read
        assert len(seen) == len(set(seen)), f"{order}: repeated items"
        assert set(existing) <= set(seen), f"{order}: skipped {set(existing) - set(seen)}"
        assert set(seen) <= set(existing) | set(arrived)
        existing += arrived


async def test_ranked_order_with_equal_engagement_is_newest_first(http, api_url):
    # with no likes yet (issue 5) every post has the same engagement: the ranked order is by recency
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, reader, author)
    ids = [await post(http, api_url, author) for _ in range(3)]
    await eventually(lambda: feed_ids(http, api_url, reader), lambda got: got == ids[::-1], timeout=30)
    assert await feed_ids(http, api_url, reader, order="ranked") == ids[::-1]


async def test_the_first_page_is_cached_and_a_push_invalidates_it(http, api_url, redis_client, settings):
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, reader, author)
    first = await post(http, api_url, author)
    await until_in_feed(http, api_url, reader, first, order="ranked")

    async def first_page():
        return await read_feed(http, api_url, reader)

    # the follow's backfill and the post's push are applied by two agents in either order, and each
    # makes the cached page stale: once both have landed, a page built afterwards is served from Redis
    page, cache = await eventually(first_page, lambda r: r[1] == "hit", timeout=30)
    assert [item["id"] for item in page["items"]] == [first]
    second = await post(http, api_url, author)

    page, cache = await eventually(first_page, lambda r: len(r[0]["items"]) == 2, timeout=30)
    assert cache == "miss"
    assert {item["id"] for item in page["items"]} == {first, second}

    # a flushed cache (the reader's keys gone, "away" included): rebuilt from Cassandra, same feed
    ns = settings.cassandra_keyspace
    await redis_client.delete(f"{ns}:feed:{reader.id}", f"{ns}:feedver:{reader.id}", f"{ns}:active:{reader.id}")
    page, cache = await read_feed(http, api_url, reader)
    assert cache == "miss" and {item["id"] for item in page["items"]} == {first, second}


async def test_bad_feed_requests_are_refused(http, api_url):
    reader, other = await active_reader(http, api_url), await active_reader(http, api_url)
    author = await register(http, api_url)
    for fan in (reader, other):
        await follow(http, api_url, fan, author)
    posts = {await post(http, api_url, author) for _ in range(3)}
    for fan in (reader, other):  # all three in, so a one-item first page has a next cursor
        await eventually(lambda f=fan: feed_ids(http, api_url, f), lambda ids: set(ids) == posts, timeout=30)
    ranked, _ = await read_feed(http, api_url, reader, limit="1")
    chronological, _ = await read_feed(http, api_url, reader, limit="1", order="chronological")
    others, _ = await read_feed(http, api_url, other, limit="1")
    cases = [
        ({"order": "best"}, "invalid_order"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"cursor": ranked["next_cursor"], "order": "chronological"}, "invalid_cursor"),
        ({"cursor": chronological["next_cursor"]}, "invalid_cursor"),
        ({"cursor": others["next_cursor"]}, "cursor_expired"),  # another reader's snapshot
    ]
    for params, code in cases:
        async with http.get(f"{api_url}/v1/feed", params=params, headers=reader.auth) as response:
            assert response.status == 400, (params, await response.text())
            assert (await response.json())["error"]["code"] == code
    async with http.get(f"{api_url}/v1/feed") as response:
        assert response.status == 401


async def test_with_redis_down_the_feed_is_served_from_cassandra(http, api_url, api_without_redis):
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, reader, author)
    post_id = await post(http, api_url, author)
    await until_in_feed(http, api_url, reader, post_id)
    for order, how in (("ranked", "bypass"), ("chronological", "uncached")):
        page, cache = await read_feed(http, api_without_redis, reader, order=order)
        assert cache == how
        assert [item["id"] for item in page["items"]] == [post_id]


@pytest.fixture(scope="module")
def api_without_redis(migrated):
    from infra.procs import free_port
    from tests.e2e.processes import start_api

    process, url = start_api("api-no-redis", {"PHOTOS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    yield url
    process.stop()


async def test_concurrent_first_reads_agree(http, api_url):
    author, reader = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, reader, author)
    post_id = await post(http, api_url, author)
    await until_in_feed(http, api_url, reader, post_id)
    pages = await asyncio.gather(*(read_feed(http, api_url, reader) for _ in range(8)))
    assert all([item["id"] for item in page["items"]] == [post_id] for page, _ in pages)
