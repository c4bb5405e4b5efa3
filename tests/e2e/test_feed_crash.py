"""A stream worker killed with SIGKILL in the middle of a fan-out, then restarted, loses and doubles nothing.

It runs its own API and worker on their own topics and consumer group, so killing this worker
disturbs no other test. Fan-out is slowed to one write in flight so the kill lands mid-way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.ids import IdGenerator
from app.settings import Settings
from app.storage.feed_cache import FeedCache
from app.storage.follows import FollowRepository
from tests.e2e.client.feed import active_reader, feed_ids
from tests.e2e.client.posts import post
from tests.e2e.client.users import follow, register
from tests.e2e.processes import isolated_api_fixture, isolated_env, start_worker
from tests.support.polling import eventually

SEEDED_FOLLOWERS = 4000
CRASH_ENV = isolated_env(
    "crash",
    PHOTOS_FEED_FANOUT_CONCURRENCY="1",
    PHOTOS_FEED_CELEBRITY_FOLLOWERS="100000",  # this author stays pushed
)


crash_api = isolated_api_fixture("crash", CRASH_ENV)


async def seed_followers(cass, redis_client, settings: Settings, author_id: int) -> list[int]:
    """Followers written straight into the mirror fan-out reads, each marked as an active reader."""
    follows = await FollowRepository(cass).prepare()
    ids = IdGenerator()
    followers = sorted(ids.next_id() for _ in range(SEEDED_FOLLOWERS))
    now = datetime.now(UTC)
    semaphore = asyncio.Semaphore(64)

    async def add(follower: int) -> None:
        async with semaphore:
            await follows.write_mirror(author_id, 0, follower, now)

    await asyncio.gather(*(add(f) for f in followers))
    cache = FeedCache.for_settings(settings, redis_client)
    async with redis_client.pipeline(transaction=False) as pipe:
        for follower in followers:
            pipe.set(cache.active_key(follower), b"1", ex=3600)
        await pipe.execute()
    return followers


async def holders(cass, readers: list[int], post_id: int) -> list[int]:
    """Which readers have the post in `feed_items`."""
    semaphore = asyncio.Semaphore(64)

    async def has(reader: int) -> bool:
        async with semaphore:
            rows = await cass.rows(
                "SELECT post_id FROM feed_items WHERE user_id = %s AND post_id = %s", (reader, post_id)
            )
            return len(rows) == 1

    found = await asyncio.gather(*(has(r) for r in readers))
    return [r for r, yes in zip(readers, found, strict=True) if yes]


async def test_sigkill_mid_fanout_then_restart_loses_and_duplicates_nothing(
    http, crash_api, cass, redis_client, settings
):
    author, reader = await register(http, crash_api), await active_reader(http, crash_api)
    worker = start_worker("streams-crash", CRASH_ENV)
    try:
        await follow(http, crash_api, reader, author)
        followers = await seed_followers(cass, redis_client, settings, int(author.id))
        post_id = await post(http, crash_api, author, "through a crash")
        first, last = followers[0], followers[-1]

        async def progress() -> tuple[bool, bool]:
            return bool(await holders(cass, [first], int(post_id))), bool(await holders(cass, [last], int(post_id)))

        # fan-out walks followers in id order: the first has it and the last not yet = mid-way
        await eventually(progress, lambda p: p[0], timeout=60, interval=0.02)
        worker.kill()  # SIGKILL: no shutdown, no offset commit
        done_before_kill = len(await holders(cass, followers, int(post_id)))
        assert 0 < done_before_kill < SEEDED_FOLLOWERS, "the kill did not land mid fan-out"

        worker = start_worker("streams-crash-restarted", CRASH_ENV)
        await eventually(
            lambda: holders(cass, followers, int(post_id)), lambda h: len(h) == SEEDED_FOLLOWERS, timeout=120,
            interval=1.0,
        )
        # nothing doubled: every sampled reader holds exactly this one entry, once
        for sample in (first, followers[SEEDED_FOLLOWERS // 2], last):
            rows = await cass.rows("SELECT post_id FROM feed_items WHERE user_id = %s", (sample,))
            assert [row.post_id for row in rows] == [int(post_id)]
        assert await feed_ids(http, crash_api, reader) == [post_id]
    finally:
        worker.stop()
