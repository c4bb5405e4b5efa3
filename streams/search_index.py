"""Keeping the search index current: new and edited profiles, follower totals, hashtag post totals.

- Agent `search_profiles` ("users" topic, `ProfileChanged`): re-reads each user's row and writes its
  username, display name and follower count. Redis down: the batch is retried until it is written.
- `follow_graph` and `hashtag_counts` hand the absolute totals they just wrote to `SearchWriter`
  (best effort there: a Redis failure must not hold up counts and feeds; it marks the index stale).
- Timer `search_repair` (every `search_repair_s`): rebuilds the index from Cassandra when this worker
  saw a failed index write, or, on the leader, when the ready marker is missing (Redis lost its data).

Every write is absolute and stamped with the time its popularity was read (app/search/index.py), so
redelivered or replayed events change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import faust
from redis.exceptions import RedisError

from app.events import ProfileChanged, topic_name
from app.search.index import Entry, SearchIndex
from app.search.query import HASHTAGS, USERS
from app.search.rebuild import now_us, rebuild, user_payload
from app.settings import Settings
from app.users.repository import UserRepository
from streams.resources import Resources
from streams.retry import until_done

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


class SearchWriter:
    """Index writes from the stream workers; one per worker process, shared by the agents."""

    def __init__(self, settings: Settings, resources: Resources) -> None:
        self._settings = settings
        self._resources = resources
        self._users: UserRepository | None = None
        self.index = SearchIndex(resources.redis(), settings.cassandra_keyspace)
        self.stale = False  # an index write failed here: the repair timer rebuilds

    async def _user_rows(self) -> UserRepository:
        if self._users is None:
            self._users = await UserRepository(await self._resources.cassandra()).prepare()
        return self._users

    async def users(self, user_ids: list[int], followers: dict[int, int] | None = None) -> None:
        """Write these users as their rows are now; `followers` overrides the row's count with a total
        the caller has just written."""
        read_at = now_us()
        rows = await (await self._user_rows()).get_many(user_ids)
        followers = followers or {}
        entries = [
            Entry(row.username, followers.get(uid, row.follower_count or 0), read_at,
                  user_payload(uid, row.display_name))
            for uid, row in rows.items() if row.username
        ]
        await self.index.upsert(USERS, entries)

    async def hashtags(self, totals: dict[str, int]) -> None:
        read_at = now_us()
        await self.index.upsert(HASHTAGS, [Entry(tag, total, read_at) for tag, total in totals.items()])

    async def best_effort(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        """`write()`, or, when Redis fails, a warning and a stale mark (the repair timer rebuilds)."""
        try:
            await write()
        except (RedisError, OSError, TimeoutError) as exc:
            self.stale = True
            log.warning("search index: %s not written (%r); the index will be rebuilt", what, exc)

    async def repair(self, leader: bool) -> None:
        """Rebuild when a write failed here, or (leader) when the index was lost."""
        if not self.stale and not (leader and not await self.index.is_ready()):
            return
        self.stale = False
        try:
            await rebuild(await self._resources.cassandra(), self.index)
        except Exception:
            self.stale = True
            raise


def register(app: faust.App, settings: Settings, resources: Resources) -> SearchWriter:
    """The agent and timer of the search index; returns the writer the count agents share."""
    writer = SearchWriter(settings, resources)
    topic = app.topic(topic_name(settings, "users"), value_type=ProfileChanged)

    @app.agent(topic, name="search_profiles")
    async def search_profiles(stream) -> None:
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            user_ids = sorted({e.actor_id for e in batch})
            await until_done("search_profiles", lambda: writer.users(user_ids))  # noqa: B023

    @app.timer(interval=settings.search_repair_s, name="search_repair")
    async def search_repair() -> None:
        try:
            await writer.repair(leader=app.is_leader())
        except Exception:  # Redis or Cassandra still down: the next tick tries again
            log.warning("search index: repair failed; retrying in %.0f s", settings.search_repair_s, exc_info=True)

    return writer
