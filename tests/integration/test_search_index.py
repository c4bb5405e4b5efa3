"""The search index in real Redis (and its rebuild from real Cassandra): stamped absolute writes,
re-ranking without leftovers, tags leaving at 0, keyset pages that neither repeat nor skip."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.ids import IdGenerator
from app.search.query import HASHTAGS, USERS, prefixes
from app.search.rebuild import rebuild
from app.storage.search_index import Entry, SearchIndex
from app.storage.users import UserRepository


@pytest.fixture
async def index(redis_client, settings):
    namespace = f"{settings.cassandra_keyspace}-search-{uuid.uuid4().hex[:8]}"
    yield SearchIndex(redis_client, namespace)
    keys = [key async for key in redis_client.scan_iter(f"{namespace}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


async def names(index: SearchIndex, kind, q: str, limit: int = 100) -> list[tuple[str, int]]:
    page = await index.search(kind, q, limit, None)
    return [(m.name, m.popularity) for m in page.matches]


async def test_a_stale_write_changes_nothing_and_a_replay_changes_nothing(index):
    await index.upsert(USERS, [Entry("ann", 5, stamp_us=200), Entry("anna", 3, stamp_us=200)])
    await index.upsert(USERS, [Entry("anna", 50, stamp_us=100)])  # read before the stored count: ignored
    assert await names(index, USERS, "an") == [("ann", 5), ("anna", 3)]
    for _ in range(2):  # a replayed total
        await index.upsert(USERS, [Entry("anna", 9, stamp_us=300)])
    assert await names(index, USERS, "ann") == [("ann", 5), ("anna", 9)]  # exact first
    assert await names(index, USERS, "a") == [("anna", 9), ("ann", 5)]


async def test_a_new_popularity_moves_a_name_in_every_prefix_set_without_leftovers(index, redis_client):
    await index.upsert(USERS, [Entry("bea", 1, 1), Entry("ben", 2, 1)])
    await index.upsert(USERS, [Entry("bea", 7, 2)])
    for prefix in prefixes("bea"):
        assert await redis_client.zcard(index.prefix_key(USERS, prefix)) == (1 if prefix == "bea" else 2)  # b, be: both
    assert await names(index, USERS, "b") == [("bea", 7), ("ben", 2)]


async def test_users_stay_at_zero_but_a_tag_with_no_posts_leaves_every_prefix_set(index, redis_client):
    await index.upsert(USERS, [Entry("cid", 0, 1)])
    await index.upsert(HASHTAGS, [Entry("cats", 4, 1), Entry("cat", 1, 1), Entry("never", 0, 1)])
    assert await names(index, USERS, "c") == [("cid", 0)]
    assert await names(index, HASHTAGS, "ca") == [("cats", 4), ("cat", 1)]
    assert await names(index, HASHTAGS, "never") == []

    await index.upsert(HASHTAGS, [Entry("cats", 0, 2)])
    assert await names(index, HASHTAGS, "ca") == [("cat", 1)]
    assert await names(index, HASHTAGS, "cats") == []
    assert await redis_client.zcard(index.prefix_key(HASHTAGS, "cats")) == 0
    await index.upsert(HASHTAGS, [Entry("cats", 4, 1)])  # an older recount cannot bring it back
    assert await names(index, HASHTAGS, "cats") == []


async def test_pages_continue_after_the_last_name_shown_even_when_names_arrive_in_between(index):
    await index.upsert(USERS, [Entry(f"dan{i}", 10 - i, 1) for i in range(6)])
    first = await index.search(USERS, "dan", 3, None)
    assert [m.name for m in first.matches] == ["dan0", "dan1", "dan2"]
    await index.upsert(USERS, [Entry("dan_top", 100, 2), Entry("dan_low", 0, 2)])  # before and after the cursor
    second = await index.search(USERS, "dan", 3, first.after)
    assert [m.name for m in second.matches] == ["dan3", "dan4", "dan5"]
    third = await index.search(USERS, "dan", 3, second.after)
    assert [m.name for m in third.matches] == ["dan_low"] and third.after is None


async def test_the_exact_name_is_first_on_the_first_page_only(index):
    await index.upsert(USERS, [Entry("eve", 0, 1), Entry("eve_fan", 8, 1), Entry("evelyn", 3, 1)])
    first = await index.search(USERS, "eve", 2, None)
    assert [m.name for m in first.matches] == ["eve", "eve_fan"]
    second = await index.search(USERS, "eve", 2, first.after)
    assert [m.name for m in second.matches] == ["evelyn"] and second.after is None


async def test_a_rebuild_indexes_claimed_users_and_used_tags_from_cassandra(index, cass, storage):
    users = await UserRepository(cass).prepare()
    ids = IdGenerator()
    stem = "r" + uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    claimed, unclaimed = ids.next_id(), ids.next_id()
    await users.insert(claimed, f"{stem}_ok", "Rebuilt", "", now)
    assert await users.claim_username(f"{stem}_ok", claimed)
    await users.insert(unclaimed, f"{stem}_lost", "Lost", "", now)  # its name claim never happened
    save_tag = await cass.prepare("UPDATE hashtags SET post_count = ? WHERE tag = ?")
    await cass.execute(save_tag, (3, f"{stem}used"))
    await cass.execute(save_tag, (0, f"{stem}unused"))

    stats = await rebuild(storage.users, storage.hashtags, index)
    assert stats.users >= 1 and stats.hashtags >= 1
    assert await index.is_ready()
    page = await index.search(USERS, stem, 10, None)
    assert [(m.name, m.popularity) for m in page.matches] == [(f"{stem}_ok", 0)]
    assert page.matches[0].payload == f'{{"id":"{claimed}","display_name":"Rebuilt"}}'.encode()
    assert await names(index, HASHTAGS, stem) == [(f"{stem}used", 3)]
