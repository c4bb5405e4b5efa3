"""A like worker killed with SIGKILL mid-batch, then restarted: every count ends exact.

Own API, worker, topics and consumer group, so the kill disturbs no other test. The worker
settles one post at a time, so a batch of likes on many posts takes long enough to be cut.
"""

from __future__ import annotations

import asyncio
import random

from tests.e2e.client.likes import like, likers
from tests.e2e.client.posts import post
from tests.e2e.client.users import register
from tests.e2e.processes import isolated_api_fixture, isolated_env, start_worker
from tests.support.polling import eventually

POSTS = 16
FANS = 12
CRASH_ENV = isolated_env(
    "likecrash",
    PHOTOS_LIKE_WORKER_POSTS_IN_PARALLEL="1",
    PHOTOS_LIKE_RATE_PER_USER="100000",
)


crash_api = isolated_api_fixture("likecrash", CRASH_ENV)


async def stored_counts(cass, post_ids: list[str]) -> dict[str, int]:
    rows = await asyncio.gather(
        *(cass.one("SELECT like_count FROM posts WHERE post_id = %s", (int(pid),)) for pid in post_ids)
    )
    return {pid: row.like_count or 0 for pid, row in zip(post_ids, rows, strict=True)}


async def test_sigkill_mid_batch_then_restart_counts_exactly(http, crash_api, cass):
    author = await register(http, crash_api)
    fans = await asyncio.gather(*(register(http, crash_api) for _ in range(FANS)))
    post_ids = [await post(http, crash_api, author) for _ in range(POSTS)]
    rng = random.Random(11)
    state: dict[tuple[str, str], bool] = {}

    async def play(fan, rounds: int) -> None:
        for _ in range(rounds):  # one fan's requests in order; fans run concurrently
            post_id, liked = rng.choice(post_ids), rng.random() < 0.7
            reply = await like(http, crash_api, fan, post_id, liked=liked)
            assert reply["liked"] is liked
            state[fan.id, post_id] = liked

    await asyncio.gather(*(play(fan, 30) for fan in fans))  # queued while no worker runs
    worker = start_worker("streams-likecrash", CRASH_ENV)
    try:
        # the first batch holds every queued like; it is settled post by post: kill it part-way
        await eventually(lambda: stored_counts(cass, post_ids), lambda c: any(c.values()), timeout=60, interval=0.02)
        worker.kill()  # SIGKILL: no shutdown, no offset commit
        settled = sum(1 for n in (await stored_counts(cass, post_ids)).values() if n)
        assert 0 < settled < POSTS, "the kill did not land mid-batch"

        await asyncio.gather(*(play(fan, 10) for fan in fans))  # more likes and unlikes while it is down
        worker = start_worker("streams-likecrash-restarted", CRASH_ENV)
        expected = {pid: sum(1 for (_, p), liked in state.items() if p == pid and liked) for pid in post_ids}
        await eventually(lambda: stored_counts(cass, post_ids), lambda c: c == expected, timeout=120, interval=0.5)
        for pid in post_ids[:4]:
            wanted = sorted(fan for (fan, p), liked in state.items() if p == pid and liked)
            assert sorted(await likers(http, crash_api, author, pid)) == wanted
    finally:
        worker.stop()
