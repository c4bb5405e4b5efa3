"""The storage footprint of a running deployment: the `storage` section of profile.json.

    .venv/bin/python -m loadtest.footprint [--sample 200]      # prints the section as JSON

Media: the sizes of the variants of sampled posts and stories, asked of the media store
(`size(key)`, no bytes read), from the keys in `posts.media` and `stories.media`. Posts and stories
are drawn from random token positions, or are the ones the caller names (a load run knows what it
uploaded). A post or story counts only when every variant it names is in the store, so rows
written by tests with made-up keys, or media already swept, do not drag the means down.

Cassandra: bytes per table from `system.table_estimates` (mean_partition_size x partitions_count
over each node's local primary ranges, so the local data centre's nodes together cover the ring
once, without replicas), summed per entity by ENTITY_TABLES and divided by the entity count. Counts
come from the caller, else from the same estimates: users, posts, comments and stories have one
partition each; follows and likes are the rows of `following` and `likes`, counted as the mean rows
of sampled partitions (`COUNT(*) ... GROUP BY` the partition key, each partition bounded) times
their partition count. The estimates cover flushed SSTables only (not memtables), are refreshed
every 5 minutes, and are uncompressed partition sizes: a figure taken right after a load run
misses what is still in memtables, and all of them overstate the disk by the compression ratio.
docs/capacity-planner.md is the contract; loadtest/capacity.py reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.media.store import MediaStore
from app.settings import Settings
from app.storage.cassandra import CassandraSession
from app.storage.system import size_estimates
from app.wiring import Storage

VARIANTS = ("original", "large", "medium", "thumbnail")
MIN_TOKEN, MAX_TOKEN = -(2**63), 2**63 - 1  # Murmur3Partitioner
SAMPLE_STARTS = 8  # random token positions a sample is read from
SIZE_LOOKUPS_IN_FLIGHT = 16

# Which tables each entity's rows live in. Bounded per-user tables (feeds, notifications) count
# as the user's; tables whose rows live a few days whatever the history (idempotency keys, sweep
# logs) belong to no entity and are reported only.
ENTITY_TABLES: dict[str, tuple[str, ...]] = {
    "user": (
        "users", "users_by_username", "sessions", "feed_items", "feed_snapshots",
        "notifications", "notification_groups",
    ),
    "post": ("posts", "posts_by_user", "user_post_buckets", "posts_by_hashtag", "hashtag_buckets", "hashtags"),
    "follow": ("following", "followers", "follower_buckets", "followed_celebrities", "celebrities"),
    "like": ("likes", "post_likers", "post_like_buckets", "affinity", "affinity_posts"),
    "comment": (
        "comments", "comments_by_post", "post_comment_buckets", "replies_by_comment", "comment_reply_buckets",
        "post_live_comments", "post_live_comment_buckets", "comment_live_replies", "comment_live_reply_buckets",
    ),
    "story": (
        "stories", "stories_by_id", "story_views", "story_viewers", "story_viewer_buckets", "story_tray",
        "story_media_expiry",
    ),
}
# entities with one partition per entity in this table: its partition count is the entity count
COUNTED_BY_PARTITIONS = {"user": "users", "post": "posts", "comment": "comments", "story": "stories_by_id"}
# entities that are the rows of this table (the truth of the edge), a bounded partition per user
EDGE_TABLES = {"follow": "following", "like": "likes"}
PARTITION_KEYS = {"following": ("user_id",), "likes": ("user_id", "month")}


async def measure(
    settings: Settings,
    cass: CassandraSession,
    store: MediaStore,
    sample: int,
    *,
    posts: Iterable[int] | None = None,
    stories: Iterable[int] | None = None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The `storage` section of profile.json for the deployment `cass` and `store` belong to.

    `sample`: posts and stories to draw at random (ignored for the kind the caller names ids of).
    `counts`: entity counts the caller knows ({"follow": n, ...}); the rest are estimated."""
    sampler = _Sampler(await Storage.prepare(cass))
    post_rows = await (sampler.posts_by_id(posts) if posts is not None else sampler.random_posts(sample))
    story_rows = await (sampler.stories_by_id(stories) if stories is not None else sampler.random_stories(sample))
    post_media = await _media_sizes(store, [row.media for row in post_rows])
    story_media = await _media_sizes(store, [row.media for row in story_rows])

    estimates = await table_estimates(cass, settings)
    table_bytes = {table: size for table, (size, _partitions) in sorted(estimates.tables.items())}
    known = dict(counts or {})
    entities = {}
    for entity, table in COUNTED_BY_PARTITIONS.items():
        entities[entity] = _counted(known, entity, estimates.partitions(table), f"partitions of {table} (estimate)")
    for entity, table in EDGE_TABLES.items():
        sizes = await sampler.random_partition_sizes(table, sample) if entity not in known else []
        entities[entity] = _counted(
            known, entity, _scaled_mean(sizes, estimates.partitions(table)),
            f"mean rows of {len(sizes)} sampled {table} partitions x partitions of {table} (estimate)",
        )

    attributed = {table for tables in ENTITY_TABLES.values() for table in tables}
    section: dict[str, Any] = {
        "media_variant_bytes": {variant: post_media.variant_mean(variant) for variant in VARIANTS},
        "media_bytes_per_post": post_media.total_mean(),
        "media_bytes_per_story": story_media.total_mean(),
    }
    for entity, tables in ENTITY_TABLES.items():
        count = entities[entity]["count"]
        total = sum(table_bytes.get(table, 0) for table in tables)
        section[f"cassandra_bytes_per_{entity}"] = round(total / count) if count else None
    section.update(redis_bytes_per_session=None, redis_bytes_per_user_index=None, redis_bytes_per_cached_feed=None)
    section["footprint"] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "keyspace": settings.cassandra_keyspace,
        "estimates": estimates.source,
        "media_sampled": {
            "posts": post_media.complete, "posts_incomplete": post_media.incomplete,
            "stories": story_media.complete, "stories_incomplete": story_media.incomplete,
        },
        "entities": entities,
        "cassandra_bytes_by_table": table_bytes,
        "unattributed_tables": sorted(set(table_bytes) - attributed),
    }
    return section


def measure_sync(settings: Settings, sample: int, **kwargs: Any) -> dict[str, Any]:
    """`measure` for synchronous callers: connects to the deployment `settings` names, measures, disconnects."""
    return asyncio.run(_measure_connected(settings, sample, **kwargs))


async def _measure_connected(settings: Settings, sample: int, **kwargs: Any) -> dict[str, Any]:
    from app.media.store import make_media_store
    from app.storage import cassandra

    cluster, cass = await cassandra.connect(settings, settings.cassandra_keyspace)
    store = make_media_store(settings)
    try:
        return await measure(settings, cass, store, sample, **kwargs)
    finally:
        await store.close()
        await cassandra.shutdown(cluster)


# --- Cassandra's own size estimates ----------------------------------------------------------------


class Estimates:
    """Bytes and partitions per table of one keyspace, summed over the ranges the nodes reported."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tables: dict[str, tuple[int, int]] = {}

    def add(self, table: str, mean_partition_size: int, partitions: int) -> None:
        size, count = self.tables.get(table, (0, 0))
        self.tables[table] = (size + mean_partition_size * partitions, count + partitions)

    def partitions(self, table: str) -> int:
        return self.tables.get(table, (0, 0))[1]


async def table_estimates(cass: CassandraSession, settings: Settings) -> Estimates:
    """Every up node of the local DC asked for its `local_primary` ranges (together: the ring, once;
    app/storage/system.py reads them)."""
    source, rows = await size_estimates(cass, settings.cassandra_keyspace, settings.cassandra_local_dc)
    estimates = Estimates(source)
    for row in rows:
        estimates.add(row.table, row.mean_partition_size, row.partitions)
    return estimates


def _counted(known: Mapping[str, int], entity: str, estimate: int | None, how: str) -> dict[str, Any]:
    if entity in known:
        return {"count": int(known[entity]), "source": "given by the caller"}
    return {"count": estimate, "source": how}


def _scaled_mean(values: list[int], population: int | None) -> int | None:
    if not values or population is None:
        return None
    return round(statistics.fmean(values) * population)


# --- samples -------------------------------------------------------------------------------------


class _Sampler:
    """Rows read from random token positions, or by the ids given: posts, stories, edge partitions."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._partition_sizes_from = {
            "following": storage.follows.partition_sizes, "likes": storage.likes.partition_sizes,
        }

    async def random_posts(self, n: int) -> list:
        return await self._from_random_tokens(self._storage.posts.media_from_token, n, lambda row: row.post_id)

    async def random_stories(self, n: int) -> list:
        rows = await self._from_random_tokens(self._storage.stories.media_from_token, n, lambda row: row.story_id)
        return [row for row in rows if row.media]  # a late view count alone is no story

    async def random_partition_sizes(self, table: str, n: int) -> list[int]:
        """The row counts of up to n random partitions of `table` (bounded partitions: cheap to count)."""
        key = PARTITION_KEYS[table]
        rows = await self._from_random_tokens(
            self._partition_sizes_from[table], n, lambda row: tuple(getattr(row, column) for column in key))
        return [row.n for row in rows]

    async def posts_by_id(self, post_ids: Iterable[int]) -> list:
        rows = [await self._storage.posts.get(post_id) for post_id in post_ids]
        return [row for row in rows if row is not None]

    async def stories_by_id(self, story_ids: Iterable[int]) -> list:
        stories = self._storage.stories
        rows = []
        for story_id in story_ids:
            found = await stories.by_id(story_id)
            if found is not None:
                row = await stories.get(found.author_id, story_id)
                if row is not None and row.media:
                    rows.append(row)
        return rows

    async def _from_random_tokens(self, read_from, n: int, identity) -> list:
        """Up to n distinct rows: n / SAMPLE_STARTS consecutive ones after each of SAMPLE_STARTS random tokens.

        Token order is hash order, unrelated to age or author, so consecutive rows are as random as
        any; a start near the end of the ring simply finds fewer."""
        if n <= 0:
            return []
        per_start = max(1, -(-n // SAMPLE_STARTS))
        seen: dict[Any, Any] = {}
        for _ in range(SAMPLE_STARTS):
            start = random.randint(MIN_TOKEN, MAX_TOKEN)
            for row in await read_from(start, per_start):
                seen.setdefault(identity(row), row)
            if len(seen) >= n:
                break
        return list(seen.values())[:n]


class _MediaSizes:
    """Variant sizes of the sampled posts (or stories) whose every variant is in the store."""

    def __init__(self) -> None:
        self.by_variant: dict[str, list[int]] = {}
        self.totals: list[int] = []
        self.complete = 0
        self.incomplete = 0

    def add(self, sizes: dict[str, int | None]) -> None:
        if not sizes or any(size is None for size in sizes.values()):
            self.incomplete += 1
            return
        self.complete += 1
        self.totals.append(sum(sizes.values()))
        for variant, size in sizes.items():
            self.by_variant.setdefault(variant, []).append(size)

    def variant_mean(self, variant: str) -> int | None:
        values = self.by_variant.get(variant)
        return round(statistics.fmean(values)) if values else None

    def total_mean(self) -> int | None:
        return round(statistics.fmean(self.totals)) if self.totals else None


async def _media_sizes(store: MediaStore, media_maps: list) -> _MediaSizes:
    slots = asyncio.Semaphore(SIZE_LOOKUPS_IN_FLIGHT)

    async def size(key: str) -> int | None:
        async with slots:
            try:
                return await store.size(key)
            except ValueError:  # not a valid key: not in any store
                return None

    async def sizes_of(media) -> dict[str, int | None]:
        variants = dict(media or {})
        found = await asyncio.gather(*(size(variant.key) for variant in variants.values()))
        return dict(zip(variants, found, strict=True))

    result = _MediaSizes()
    for sizes in await asyncio.gather(*(sizes_of(media) for media in media_maps)):
        result.add(sizes)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=200, help="posts and stories to sample (default 200)")
    args = parser.parse_args(argv)
    print(json.dumps(measure_sync(Settings.from_env(), args.sample), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
