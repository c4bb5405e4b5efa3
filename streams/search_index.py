"""Keeping the search index current: new and edited profiles, follower totals, hashtag post totals.

- Agent `search_profiles` ("users" topic, `ProfileChanged`): re-reads each user's row and writes its
  username, display name and follower count. Redis down: the batch is retried until it is written.
- `follow_graph` and `hashtag_counts` hand the absolute totals they just wrote to `SearchWriter`
  (best effort there: a Redis failure must not hold up counts and feeds; the writer remembers the
  users and tags it missed).
- Timer `search_repair` (every `search_repair_s`): rewrites the users and tags this worker missed from
  their rows as they are then (a full rebuild only past MAX_MISSED of them), and, on the leader,
  rebuilds the index from Cassandra when the ready marker is missing (Redis lost its data).

Every write is absolute and stamped with the time its popularity was read (app/storage/search_index.py), so
redelivered or replayed events change nothing.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from redis.exceptions import RedisError

from app.events import ProfileChanged
from app.search.query import HASHTAGS, USERS
from app.search.rebuild import now_us, rebuild, user_payload
from app.settings import Settings
from app.storage.hashtags import HashtagRepository
from app.storage.search_index import Entry
from app.storage.users import UserRepository
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import timer

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.5
MAX_MISSED = 100_000  # users + tags remembered for repair; past it the repair rebuilds the whole index


class SearchWriter:
    """Index writes from the stream workers; one per worker process, shared by the agents."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring
        self.index = wiring.caches().search
        # what an index write that failed here left out; the repair timer rewrites it
        self._missed_users: set[int] = set()
        self._missed_tags: set[str] = set()
        self._rebuild = False  # too many missed to remember: the repair rebuilds everything

    @property
    def stale(self) -> bool:
        """Whether a write failed here and the repair has not caught up yet."""
        return self._rebuild or bool(self._missed_users or self._missed_tags)

    async def _user_rows(self) -> UserRepository:
        return (await self._wiring.storage()).users

    async def _hashtag_rows(self) -> HashtagRepository:
        return (await self._wiring.storage()).hashtags

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

    async def users_best_effort(self, user_ids: list[int], followers: dict[int, int]) -> None:
        """`users()`, or, when Redis fails, a warning and the users remembered for the repair timer."""
        try:
            await self.users(user_ids, followers)
        except (RedisError, OSError, TimeoutError) as exc:
            self._remember(user_ids, (), exc)

    async def hashtags_best_effort(self, totals: dict[str, int]) -> None:
        """`hashtags()`, or, when Redis fails, a warning and the tags remembered for the repair timer."""
        try:
            await self.hashtags(totals)
        except (RedisError, OSError, TimeoutError) as exc:
            self._remember((), totals, exc)

    def _remember(self, user_ids, tags, exc: Exception) -> None:
        self._missed_users.update(user_ids)
        self._missed_tags.update(tags)
        if len(self._missed_users) + len(self._missed_tags) > MAX_MISSED:
            self._missed_users.clear()
            self._missed_tags.clear()
            self._rebuild = True
        log.warning("search index: %d users, %d tags not written (%r); the repair timer rewrites them",
                    len(user_ids), len(tags), exc)

    async def repair(self, leader: bool) -> None:
        """Rewrite what a failed write missed here (read again from Cassandra: absolute, stamped), or
        rebuild when too much was missed, or (leader) when the index was lost."""
        if self._rebuild or (leader and not await self.index.is_ready()):
            self._rebuild, self._missed_users, self._missed_tags = True, set(), set()
            await rebuild(await self._user_rows(), await self._hashtag_rows(), self.index)
            self._rebuild = False
            return
        users, tags = sorted(self._missed_users), sorted(self._missed_tags)
        if users:
            await self.users(users)
            self._missed_users.difference_update(users)
        if tags:
            hashtags = await self._hashtag_rows()
            read_at = now_us()  # before the reads: a newer count written meanwhile wins
            counts = await asyncio.gather(*(hashtags.post_count(tag) for tag in tags))
            await self.index.upsert(HASHTAGS, [Entry(t, n, read_at) for t, n in zip(tags, counts, strict=True)])
            self._missed_tags.difference_update(tags)


def register(app: faust.App, settings: Settings, wiring: Wiring, writer: SearchWriter) -> None:
    """The agent and timer of the search index; `writer` is the one the count agents share too."""
    topic = event_topic(app, settings, "users")

    @app.agent(topic, name="search_profiles")
    async def search_profiles(stream) -> None:
        await each_batch(stream, "search_profiles", lambda batch: writer.users(sorted({e.actor_id for e in batch})),
                         size=BATCH_SIZE, within=BATCH_SECONDS, settings=settings, value_type=ProfileChanged)

    @timer(app, interval=settings.search_repair_s, name="search_repair")
    async def search_repair() -> None:  # Redis or Cassandra still down: the next tick tries again
        await writer.repair(leader=app.is_leader())
