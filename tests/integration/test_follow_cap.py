"""The follow cap against real Cassandra (app/storage/follows.py): each edge write and the partition's
`edge_count` change together in one conditional batch, so concurrent follows never pass the cap, the count
never disagrees with the edges, and partitions written before the count get one at their next edge write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.ids import IdGenerator
from app.storage.follows import FollowRepository

ids = IdGenerator()


@pytest.fixture(scope="module")
async def follows(cass) -> FollowRepository:
    return await FollowRepository(cass).prepare()


async def edges_and_count(cass, follows: FollowRepository, user_id: int) -> tuple[int, int | None]:
    rows = await cass.rows("SELECT edge_count FROM following WHERE user_id = %s LIMIT 1", (user_id,))
    return await follows.count_following(user_id), rows[0].edge_count if rows else None


async def test_concurrent_claims_take_exactly_the_places_left(cass, follows):
    fan, stars, now = ids.next_id(), [ids.next_id() for _ in range(40)], datetime.now(UTC)
    claimed = await asyncio.gather(*(follows.claim_edge(fan, star, now, 0, max_following=7) for star in stars))
    assert sum(bucket is not None for bucket in claimed) == 7
    assert await edges_and_count(cass, follows, fan) == (7, 7)
    taken = [star for star, bucket in zip(stars, claimed, strict=True) if bucket is not None]
    assert await follows.claim_edge(fan, taken[0], now, 3, max_following=7) == 0  # an edge that exists: its bucket
    assert await follows.claim_edge(fan, ids.next_id(), now, 0, max_following=7) is None


async def test_deletes_uncount_only_edges_that_existed(cass, follows):
    fan, stars, now = ids.next_id(), [ids.next_id() for _ in range(4)], datetime.now(UTC)
    for star in stars:
        await follows.claim_edge(fan, star, now, 0)
    results = await asyncio.gather(*(follows.delete_edge(fan, star) for star in [*stars[:3], *stars[:3]]))
    assert sorted(results) == [False] * 3 + [True] * 3  # each edge deleted once, counted down once
    assert await follows.delete_edge(fan, ids.next_id()) is False
    assert await edges_and_count(cass, follows, fan) == (1, 1)


async def test_a_partition_written_before_the_count_is_counted_at_its_next_edge_write(cass, follows):
    fan, now = ids.next_id(), datetime.now(UTC)
    for _ in range(3):  # as the seeder and the API before migration 0012 wrote them
        await cass.execute("INSERT INTO following (user_id, followee_id, followed_at, follower_bucket)"
                           " VALUES (%s, %s, %s, 0)", (fan, ids.next_id(), now))
    assert await edges_and_count(cass, follows, fan) == (3, None)
    assert await follows.claim_edge(fan, ids.next_id(), now, 0, max_following=4) == 0
    assert await follows.claim_edge(fan, ids.next_id(), now, 0, max_following=4) is None
    assert await edges_and_count(cass, follows, fan) == (4, 4)


async def test_a_partition_holding_only_its_count_reads_as_following_nobody(cass, follows):
    fan, star = ids.next_id(), ids.next_id()
    await follows.claim_edge(fan, star, datetime.now(UTC), 0)
    await follows.delete_edge(fan, star)
    assert await edges_and_count(cass, follows, fan) == (0, 0)
    assert await follows.all_following(fan) == []
    assert await follows.following_page(fan, 0, 10) == []
    assert await follows.is_following(fan, [star]) == set()
    token = (await cass.one("SELECT token(user_id) AS t FROM following WHERE user_id = %s LIMIT 1", (fan,))).t
    assert [(row.user_id, row.n) for row in await follows.partition_sizes(token, 1)] == [(fan, 0)]
