"""The follow-graph updater against real Cassandra: mirror repair, recounts, bucket roll-over."""

import asyncio
from datetime import UTC, datetime

import pytest

from app.events import FollowChanged, new_event_fields
from app.feed.writer import FeedWriter
from app.ids import IdGenerator
from app.storage.feed import FeedRepository
from app.storage.feed_cache import FeedCache
from app.storage.follows import FollowRepository
from app.storage.posts import USER_POSTS
from app.storage.timelines import BucketedTimeline
from app.storage.users import UserRepository
from streams.feed_graph import FeedGraph
from streams.follow_graph import FollowGraphUpdater

ids = IdGenerator()


@pytest.fixture(scope="module")
async def repos(cass):
    return await UserRepository(cass).prepare(), await FollowRepository(cass).prepare()


@pytest.fixture(scope="module")
async def store(repos):
    """What a FollowGraphUpdater is made of: the users and follows table owners."""
    return repos


@pytest.fixture(scope="module")
async def feeds(cass, redis_client, settings, store):
    feed = await FeedRepository(cass).prepare()
    posts_by_user = await BucketedTimeline(cass, USER_POSTS).prepare()
    writer = FeedWriter.for_settings(settings, feed, posts_by_user, FeedCache.for_settings(settings, redis_client))
    return FeedGraph(writer, store[1], celebrity_followers=10_000)


async def new_user(users: UserRepository) -> int:
    user_id = ids.next_id()
    await users.insert(user_id, f"g{user_id}", "", "x", datetime.now(UTC))
    return user_id


def event(follower: int, followee: int, bucket: int, following: bool) -> FollowChanged:
    return FollowChanged(**new_event_fields(follower), followee_id=followee, bucket=bucket, following=following)


async def test_recount_repairs_a_missing_mirror_and_ignores_redelivery(repos, store, feeds):
    users, follows = repos
    star, fan = await new_user(users), await new_user(users)
    await follows.claim_edge(fan, star, datetime.now(UTC), 0)  # edge written, mirror lost in a crash
    updater = FollowGraphUpdater(*store, followers_per_bucket=1000, feeds=feeds)
    for _ in range(3):  # the same event delivered three times
        await updater.apply([event(fan, star, 0, True)])
    assert (await users.get(star)).follower_count == 1
    assert (await users.get(fan)).following_count == 1
    assert (await follows.followers_page(star, 0, 0, 10))[0] == [fan]


async def test_rechecks_of_one_follower_settle_from_the_edges_read_at_serial(
    repos, store, feeds
):
    """Requests that failed mid-transaction announce rechecks; many of them by one follower (one `following`
    partition) are settled in one batch, each from the edge as it is, whichever way the request went."""
    users, follows = repos
    fan = await new_user(users)
    stars = [await new_user(users) for _ in range(40)]
    landed = stars[::2]
    for star in landed:  # these follows reached the disk before their requests failed; the others did not
        await follows.claim_edge(fan, star, datetime.now(UTC), 0)
    rechecks = [
        FollowChanged(**new_event_fields(fan), followee_id=star, bucket=0, following=True, recheck=True)
        for star in stars
    ]
    await FollowGraphUpdater(*store, followers_per_bucket=1000, feeds=feeds).apply(rechecks)
    assert (await users.get(fan)).following_count == len(landed)
    for star in stars:
        expected = [fan] if star in landed else []
        assert (await follows.followers_page(star, 0, 0, 10))[0] == expected
        assert ((await users.get(star)).follower_count or 0) == len(expected)


async def test_recount_removes_an_orphan_mirror_row(repos, store, feeds):
    users, follows = repos
    star, fan = await new_user(users), await new_user(users)
    await follows.write_mirror(star, 0, fan, datetime.now(UTC))  # mirror without the truth edge
    await FollowGraphUpdater(*store, followers_per_bucket=1000, feeds=feeds).apply([event(fan, star, 0, False)])
    assert (await users.get(star)).follower_count == 0
    assert (await follows.followers_page(star, 0, 0, 10))[0] == []


async def test_a_full_bucket_opens_the_next_and_counts_sum_over_buckets(repos, store, feeds):
    users, follows = repos
    star = await new_user(users)
    fans = [await new_user(users) for _ in range(5)]
    updater = FollowGraphUpdater(*store, followers_per_bucket=3, feeds=feeds)
    now = datetime.now(UTC)
    for fan in fans:
        bucket = (await users.get(star)).follower_bucket or 0
        await follows.claim_edge(fan, star, now, bucket)
        await follows.write_mirror(star, bucket, fan, now)
        await updater.apply([event(fan, star, bucket, True)])
    row = await users.get(star)
    assert row.follower_bucket == 1
    assert row.follower_count == 5
    page, last_bucket = await follows.followers_page(star, 0, 0, 10)
    assert sorted(page) == sorted(fans) and last_bucket == 1


async def test_concurrent_batches_for_one_follower_leave_the_latest_count(repos, store, feeds):
    users, follows = repos
    fan = await new_user(users)
    stars = [await new_user(users) for _ in range(8)]
    now = datetime.now(UTC)
    for star in stars:
        await follows.claim_edge(fan, star, now, 0)
    updater = FollowGraphUpdater(*store, followers_per_bucket=1000, feeds=feeds)
    await asyncio.gather(*(updater.apply([event(fan, star, 0, True)]) for star in stars))
    assert (await users.get(fan)).following_count == 8
