"""loadtest/footprint.py against the real Cassandra, and the media stores' `size` it relies on.

Media sizes are checked exactly on posts and stories written here with objects of known lengths;
Cassandra's bytes per table against `system.table_estimates` read independently by the test. The
estimates only see flushed SSTables and the local stack has no nodetool (no JMX), so the rows
written here may not be in them yet: the arithmetic is checked on whatever the keyspace holds.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from app.ids import IdGenerator
from app.storage.stories import StoryRepository
from loadtest.footprint import ENTITY_TABLES, measure

ids = IdGenerator()
VARIANTS = ("original", "large", "medium", "thumbnail")


async def test_size_is_the_objects_length_and_none_when_there_is_none(store):
    key = f"t/{secrets.token_hex(6)}/large-1.jpg"
    assert await store.size(key) is None
    await store.put(key, b"\xff" * 12_345, "image/jpeg")
    assert await store.size(key) == 12_345
    await store.put(key, b"", "image/jpeg")
    assert await store.size(key) == 0
    assert await store.size(key.rpartition("/")[0]) is None  # a "directory" is no object
    with pytest.raises(ValueError):
        await store.size("../escape.jpg")


@pytest.fixture(scope="module")
async def stories(cass):
    return await StoryRepository(cass).prepare()


async def stored_media(store, prefix: str, sizes: dict[str, int], *, missing: str = "") -> dict:
    """A media map whose variants are objects of the given lengths (`missing` is named but never stored)."""
    media = {}
    for variant, size in sizes.items():
        key = f"{prefix}/{variant}-{secrets.token_hex(4)}.jpg"
        if variant != missing:
            await store.put(key, b"\x00" * size, "image/jpeg")
        media[variant] = (key, 100, 100)
    return media


async def new_post(posts, store, sizes, **kwargs) -> int:
    post_id = ids.next_id()
    media = await stored_media(store, f"p/{post_id}", sizes, **kwargs)
    await posts.insert(post_id, ids.next_id(), "caption", [], [], "", None, media, "", datetime.now(UTC))
    return post_id


async def new_story(stories, store, sizes) -> int:
    story_id, now = ids.next_id(), datetime.now(UTC)
    media = await stored_media(store, f"s/{story_id}", sizes)
    await stories.insert(ids.next_id(), story_id, media, "", now, now + timedelta(hours=1))
    return story_id


async def test_media_bytes_are_the_means_over_the_named_posts_and_stories_whose_media_is_all_there(
    migrated, cass, posts, stories, local_store
):
    small = dict(zip(VARIANTS, (4_000, 1_500, 600, 80), strict=True))
    large = dict(zip(VARIANTS, (6_000, 2_500, 1_000, 120), strict=True))
    post_ids = [
        await new_post(posts, local_store, small),
        await new_post(posts, local_store, large),
        await new_post(posts, local_store, large, missing="medium"),  # swept or never stored: left out
        ids.next_id(),  # no such post
    ]
    story_ids = [await new_story(stories, local_store, {"original": 9_000, "large": 3_000}), ids.next_id()]

    section = await measure(migrated, cass, local_store, 10, posts=post_ids, stories=story_ids)

    # (4,000 + 6,000) / 2, and so on for each variant; the post missing its medium is not averaged in
    assert section["media_variant_bytes"] == {"original": 5_000, "large": 2_000, "medium": 800, "thumbnail": 100}
    assert section["media_bytes_per_post"] == 7_900  # (6,180 + 9,620) / 2
    assert section["media_bytes_per_story"] == 12_000
    assert section["footprint"]["media_sampled"] == {
        "posts": 2, "posts_incomplete": 1, "stories": 1, "stories_incomplete": 0,
    }


async def table_bytes_from_estimates(cass, keyspace: str) -> dict[str, int]:
    rows = await cass.rows(
        "SELECT table_name, range_type, mean_partition_size, partitions_count"
        " FROM system.table_estimates WHERE keyspace_name = %s",
        (keyspace,),
    )
    totals: dict[str, int] = {}
    for row in rows:
        if row.range_type == "local_primary":  # one node: its local primary ranges are the whole ring
            totals[row.table_name] = totals.get(row.table_name, 0) + row.mean_partition_size * row.partitions_count
    return totals


async def test_cassandra_bytes_per_entity_are_the_estimated_bytes_of_its_tables_over_the_given_count(
    migrated, cass, local_store
):
    counts = {"user": 1_000, "post": 2_000, "follow": 3_000, "like": 4_000, "comment": 5_000, "story": 7}
    before = await table_bytes_from_estimates(cass, migrated.cassandra_keyspace)
    section = await measure(migrated, cass, local_store, 5, counts=counts)
    after = await table_bytes_from_estimates(cass, migrated.cassandra_keyspace)

    by_table = section["footprint"]["cassandra_bytes_by_table"]
    assert by_table in (before, after)  # the node refreshes its estimates every 5 minutes
    for entity, count in counts.items():
        expected = round(sum(by_table.get(table, 0) for table in ENTITY_TABLES[entity]) / count)
        assert section[f"cassandra_bytes_per_{entity}"] == expected
        assert section["footprint"]["entities"][entity] == {"count": count, "source": "given by the caller"}
    assert "schema_migrations" in section["footprint"]["unattributed_tables"]
    assert section["redis_bytes_per_session"] is None  # not footprint's to measure


async def test_random_samples_and_estimated_counts_fill_every_field_the_planner_reads(
    migrated, cass, posts, local_store
):
    await new_post(posts, local_store, dict(zip(VARIANTS, (10, 20, 30, 40), strict=True)))
    section = await measure(migrated, cass, local_store, 20)

    sampled = section["footprint"]["media_sampled"]
    assert sampled["posts"] + sampled["posts_incomplete"] <= 20
    for entity in ENTITY_TABLES:
        found = section["footprint"]["entities"][entity]
        assert found["count"] is None or found["count"] >= 0, found
        assert "estimate" in found["source"]
        value = section[f"cassandra_bytes_per_{entity}"]
        assert value is None or value >= 0
    media = [section["media_bytes_per_post"], section["media_bytes_per_story"]]
    media += section["media_variant_bytes"].values()
    assert all(value is None or value > 0 for value in media), media
