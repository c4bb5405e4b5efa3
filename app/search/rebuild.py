"""`photos-search-rebuild`: the search index rebuilt from Cassandra (Redis keeps no copy on disk here).

Scans `users_by_username` (the names that exist), then `users` and `hashtags` page by page, and writes
every name with its popularity as read, stamped with the time its page was read. It runs beside the
agents safely: a write stamped older than what the index holds is ignored, so neither side can put
back a stale count. Tags with no posts are left out (or removed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass

import orjson

from app.search.query import HASHTAGS, USERS
from app.settings import Settings
from app.storage.hashtags import HashtagRepository
from app.storage.search_index import Entry, SearchIndex
from app.storage.users import UserRepository
from app.wiring import Wiring

log = logging.getLogger(__name__)

PAGE_ROWS = 2_000


def now_us() -> int:
    return time.time_ns() // 1000


def user_payload(user_id: int, display_name: str | None) -> bytes:
    """What a user result shows beside its username and follower count."""
    return orjson.dumps({"id": str(user_id), "display_name": display_name or ""})


@dataclass
class RebuildStats:
    users: int = 0
    hashtags: int = 0
    seconds: float = 0.0



async def rebuild(users: UserRepository, hashtags: HashtagRepository, index: SearchIndex) -> RebuildStats:
    """Write every user and hashtag into the index, then mark it ready."""
    started = time.perf_counter()
    stats = RebuildStats()
    claimed = {}  # username -> user id: a `users` row whose name claim lost is not a user
    async for _, rows in users.all_usernames(PAGE_ROWS):
        claimed.update((row.username, row.user_id) for row in rows)
    async for read_at, rows in users.all_profiles(PAGE_ROWS):
        entries = [Entry(row.username, row.follower_count or 0, read_at, user_payload(row.user_id, row.display_name))
                   for row in rows if row.username and claimed.get(row.username) == row.user_id]
        await index.upsert(USERS, entries)
        stats.users += len(entries)
    async for read_at, rows in hashtags.all_counts(PAGE_ROWS):
        entries = [Entry(row.tag, row.post_count or 0, read_at) for row in rows]
        await index.upsert(HASHTAGS, entries)
        stats.hashtags += sum(1 for e in entries if e.popularity > 0)
    await index.mark_ready(now_us())
    stats.seconds = time.perf_counter() - started
    log.info("search index rebuilt: %d users, %d hashtags in %.1f s", stats.users, stats.hashtags, stats.seconds)
    return stats


async def _run(settings: Settings) -> RebuildStats:
    wiring = Wiring(settings)
    try:
        storage = await wiring.storage()
        return await rebuild(storage.users, storage.hashtags, wiring.caches().search)
    finally:
        await wiring.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-search-rebuild", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stats = asyncio.run(_run(Settings.from_env()))
    print(f"search index rebuilt: {stats.users:,} users, {stats.hashtags:,} hashtags in {stats.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
