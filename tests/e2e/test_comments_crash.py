"""A comment worker killed with SIGKILL mid-stream, then restarted: comment_count and every
reply_count end exact.

Own API, worker, topics and consumer group (named after this run's), so the kill disturbs no
other test. Comments, replies, deletes and client retries are queued while no worker runs; the
worker then takes four events per batch, so the backlog lasts long enough to be cut.
"""

from __future__ import annotations

import asyncio
import random
import uuid

from cassandra.query import ValueSequence

from app.ids import hour_bucket
from tests.e2e.client.comments import delete_comment, replies, reply_counts, top_level, try_comment
from tests.e2e.client.posts import post
from tests.e2e.client.users import register
from tests.e2e.processes import isolated_api_fixture, isolated_env, start_worker
from tests.support.polling import eventually

CRASH_ENV = isolated_env(
    "commentcrash",
    PHOTOS_COMMENT_WORKER_BATCH_SIZE="4",
    PHOTOS_COMMENT_RATE_PER_USER="100000",
)


crash_api = isolated_api_fixture("commentcrash", CRASH_ENV)


class Thread:
    """What the test did to one post's comments, to compare the counts with."""

    def __init__(self) -> None:
        self.comments: dict[str, dict] = {}
        self.deleted: set[str] = set()

    def live(self) -> dict[str, dict]:
        return {cid: c for cid, c in self.comments.items() if cid not in self.deleted}

    def expected_reply_counts(self) -> dict[str, int]:
        """reply_count of each top-level comment that is listed (deleted ones only with live replies)."""
        live = self.live()
        counts = {
            cid: sum(1 for r in live.values() if r["parent_id"] == cid)
            for cid, c in self.comments.items() if c["parent_id"] is None
        }
        return {cid: n for cid, n in counts.items() if cid not in self.deleted or n > 0}


async def stored_comment_count(cass, post_id: str) -> int:
    row = await cass.one("SELECT comment_count FROM posts WHERE post_id = %s", (int(post_id),))
    return row.comment_count or 0


async def play(http, url, users, post_id: str, thread: Thread, rng: random.Random, rounds: int) -> None:
    """Comments, replies, deletes and retries, several users at once."""
    slots = asyncio.Semaphore(12)

    async def one(user) -> None:
        async with slots:
            live = thread.live().values()
            tops = [c for c in live if c["parent_id"] is None]
            mine = [c for c in live if c["author"]["id"] == user.id]
            roll = rng.random()
            if roll < 0.3 and mine:
                victim = rng.choice(mine)
                thread.deleted.add(victim["id"])
                for _ in range(rng.choice((1, 2))):  # sometimes retried
                    assert await delete_comment(http, url, user, victim["id"]) == 204
                return
            parent = rng.choice(tops)["id"] if tops and roll < 0.6 else None
            key = uuid.uuid4().hex
            for _ in range(rng.choice((1, 2))):  # sometimes retried with the same Idempotency-Key
                status, body = await try_comment(http, url, user, post_id, "through a crash", parent, key)
                if status == 409 and body["error"]["code"] == "parent_deleted":
                    return  # its author deleted it meanwhile
                assert status == 201, body
                thread.comments[body["id"]] = body

    await asyncio.gather(*(one(rng.choice(users)) for _ in range(rounds)))


async def test_sigkill_mid_stream_then_restart_counts_exactly(http, crash_api, cass):
    author = await register(http, crash_api)
    users = [author, *await asyncio.gather(*(register(http, crash_api) for _ in range(5)))]
    post_id = await post(http, crash_api, author)
    thread, rng = Thread(), random.Random(17)
    await play(http, crash_api, users, post_id, thread, rng, rounds=360)  # queued while no worker runs
    live_before_kill = len(thread.live())

    worker = start_worker("streams-commentcrash", CRASH_ENV)
    try:
        await eventually(lambda: stored_comment_count(cass, post_id), lambda n: n >= 20, timeout=90, interval=0.02)
        worker.kill()  # SIGKILL: no shutdown, no offset commit
        counted = await stored_comment_count(cass, post_id)
        assert 0 < counted < live_before_kill, "the kill did not land mid-stream"

        await play(http, crash_api, users, post_id, thread, rng, rounds=80)  # more while it is down
        worker = start_worker("streams-commentcrash-restarted", CRASH_ENV)
        live = thread.live()
        await eventually(
            lambda: stored_comment_count(cass, post_id), lambda n: n == len(live), timeout=120, interval=0.5
        )
        expected = thread.expected_reply_counts()
        await eventually(lambda: reply_counts(http, crash_api, author, post_id), lambda c: c == expected, timeout=60)
        members = await cass.rows(
            "SELECT comment_id FROM post_live_comments WHERE post_id = %s AND bucket IN %s",
            (int(post_id), ValueSequence(sorted({hour_bucket(int(cid)) for cid in thread.comments}))),
        )
        assert sorted(str(row.comment_id) for row in members) == sorted(live)
        listed_replies = {r["id"] for cid in expected for r in await replies(http, crash_api, author, cid)}
        assert listed_replies == {cid for cid, c in live.items() if c["parent_id"] is not None}
        assert {c["id"] for c in await top_level(http, crash_api, author, post_id)} == set(expected)
        assert len(thread.deleted) > 20 and len(live) > 100
    finally:
        worker.stop()
