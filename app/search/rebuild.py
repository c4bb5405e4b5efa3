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
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from app.search.query import HASHTAGS, USERS
from app.settings import Settings
from app.storage import cassandra
from app.storage.cassandra import CassandraSession
from app.storage.search_index import Entry, SearchIndex

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


async def _pages(cass: CassandraSession, cql: str) -> AsyncIterator[tuple[int, list]]:
    """(read time, rows) of each page of a full-table scan."""
    statement = await cass.prepare(cql)
    paging_state = None
    while True:
        read_at = now_us()
        page = await cass.execute(statement, fetch_size=PAGE_ROWS, paging_state=paging_state)
        yield read_at, page.current_rows
        paging_state = page.paging_state
        if paging_state is None:
            return


async def rebuild(cass: CassandraSession, index: SearchIndex) -> RebuildStats:
    """Write every user and hashtag into the index, then mark it ready."""
    started = time.perf_counter()
    stats = RebuildStats()
    claimed = {}  # username -> user id: a `users` row whose name claim lost is not a user
    async for _, rows in _pages(cass, "SELECT username, user_id FROM users_by_username"):
        claimed.update((row.username, row.user_id) for row in rows)
    async for read_at, rows in _pages(cass, "SELECT user_id, username, display_name, follower_count FROM users"):
        entries = [Entry(row.username, row.follower_count or 0, read_at, user_payload(row.user_id, row.display_name))
                   for row in rows if row.username and claimed.get(row.username) == row.user_id]
        await index.upsert(USERS, entries)
        stats.users += len(entries)
    async for read_at, rows in _pages(cass, "SELECT tag, post_count FROM hashtags"):
        entries = [Entry(row.tag, row.post_count or 0, read_at) for row in rows]
        await index.upsert(HASHTAGS, entries)
        stats.hashtags += sum(1 for e in entries if e.popularity > 0)
    await index.mark_ready(now_us())
    stats.seconds = time.perf_counter() - started
    log.info("search index rebuilt: %d users, %d hashtags in %.1f s", stats.users, stats.hashtags, stats.seconds)
    return stats


async def _run(settings: Settings) -> RebuildStats:
    cluster, cass = await cassandra.connect(settings, settings.cassandra_keyspace)
    redis = Redis.from_url(settings.redis_url, socket_timeout=30.0)
    try:
        return await rebuild(cass, SearchIndex(redis, settings.cassandra_keyspace))
    finally:
        await redis.aclose()
        await cassandra.shutdown(cluster)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-search-rebuild", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stats = asyncio.run(_run(Settings.from_env()))
    print(f"search index rebuilt: {stats.users:,} users, {stats.hashtags:,} hashtags in {stats.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
