"""The CQL of stories, their views, the tray and the story media log; every statement prepared once.

Every write of a story's data carries `USING TTL` = what is left of the story's life, so all of
it expires together with the story (cql/migrations/0010_stories.cql).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from cassandra import ConsistencyLevel

from app.storage.cassandra import CassandraSession
from app.storage.counted_set import CountedSet, CountedSetTables
from app.storage.member_pages import MemberPages

STORY_COLUMNS = "author_id, story_id, media, preview, created_at, expires_at, view_count"
# who viewed a story, in buckets with exact counts; written only by the story_views agent, expiring with the story
STORY_VIEWERS = CountedSetTables(
    members="story_viewers", owner="story_id", member="viewer_id", count="view_count",
    index="story_viewer_buckets", extra=("viewed_at",), expiring=True,
)
EXPIRY_SHARDS = 16  # a minute of stories at 5,800/s leaves ~22k rows per partition
EXPIRY_RECORD_EXTRA_S = 7 * 24 * 3600  # how long after its story a media record outlives it
TRAY_FETCH = 5000


def remaining_s(expires_at: datetime, now: float | None = None) -> int:
    """Whole seconds of life left (0 or less: expired). Rounded up, so the last second still counts."""
    left = _timestamp(expires_at) - (time.time() if now is None else now)
    return int(left) + (1 if left > int(left) else 0)


def row_ttl_s(expires_at: datetime, now: float | None = None) -> int:
    """The `USING TTL` that keeps a row of the story at least until it expires (0 or less: expired).
    Cassandra counts a TTL from the whole second of the write (it truncates the write time), so the
    remaining life rounded up could end up to a second early: one more second, and reads drop the
    row at `expires_at` to the millisecond (`is_live`), so the listing and the tray agree."""
    left = remaining_s(expires_at, now)
    return left + 1 if left > 0 else left


def is_live(expires_at: datetime, now: float | None = None) -> bool:
    """Whether a story expiring at `expires_at` is live: to the millisecond, not the TTL's whole second."""
    return _timestamp(expires_at) > (time.time() if now is None else now)


def _timestamp(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def expiry_minute(expires_at: datetime) -> int:
    return int(_timestamp(expires_at) // 60)


@dataclass(frozen=True)
class ExpiryPlace:
    minute: int
    shard: int


class StoryRef(NamedTuple):
    """What the view path and the view worker know of a story (a `stories_by_id` row has these too)."""

    story_id: int
    author_id: int
    expires_at: datetime
    view_bucket: int | None = 0


@dataclass(frozen=True)
class ViewClaim:
    first: bool  # this request made the claim
    bucket: int
    viewed_at: datetime


class StoryRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass
        self.viewer_pages = MemberPages(cass, STORY_VIEWERS)
        self.viewers = CountedSet(cass, STORY_VIEWERS)  # written by the story_views agent

    async def prepare(self) -> StoryRepository:
        p = self._cass.prepare
        await self.viewer_pages.prepare()
        await self.viewers.prepare()
        self._insert = await p(
            "INSERT INTO stories (author_id, story_id, media, preview, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
        )
        self._insert_by_id = await p(
            "INSERT INTO stories_by_id (story_id, author_id, expires_at, view_bucket) VALUES (?, ?, ?, 0) USING TTL ?"
        )
        self._delete = await p("DELETE FROM stories WHERE author_id = ? AND story_id = ?")
        self._delete_by_id = await p("DELETE FROM stories_by_id WHERE story_id = ?")
        self._live_count = await p("SELECT COUNT(*) AS n FROM stories WHERE author_id = ?")
        self._page = await p(f"SELECT {STORY_COLUMNS} FROM stories WHERE author_id = ? AND story_id > ? LIMIT ?")
        self._media_from = await p(
            "SELECT author_id, story_id, media FROM stories WHERE token(author_id) >= ? LIMIT ?"
        )
        self._get = await p(f"SELECT {STORY_COLUMNS} FROM stories WHERE author_id = ? AND story_id = ?")
        self._live_ids = await p("SELECT story_id, expires_at FROM stories WHERE author_id = ?")
        self._by_id = await p(
            "SELECT story_id, author_id, expires_at, view_bucket FROM stories_by_id WHERE story_id = ?"
        )
        self._view = await p("SELECT viewed_at, bucket FROM story_views WHERE story_id = ? AND viewer_id = ?")
        self._claim_view = await p(
            "INSERT INTO story_views (story_id, viewer_id, viewed_at, bucket) VALUES (?, ?, ?, ?)"
            " IF NOT EXISTS USING TTL ?"
        )
        # the tray: only UPDATEs, so a row lives exactly as long as its newest cell
        self._push = await p(
            "UPDATE story_tray USING TTL ? SET story_ids = story_ids + ?, username = ?"
            " WHERE reader_id = ? AND author_id = ?"
        )
        self._mark_seen = await p(
            "UPDATE story_tray USING TTL ? SET seen = seen + ? WHERE reader_id = ? AND author_id = ?"
        )
        self._tray = await p("SELECT author_id, username, story_ids, seen FROM story_tray WHERE reader_id = ?")
        self._tray_row = await p(
            "SELECT username, story_ids, seen FROM story_tray WHERE reader_id = ? AND author_id = ?"
        )
        self._drop_tray_row = await p("DELETE FROM story_tray WHERE reader_id = ? AND author_id = ?")
        # the view worker's absolute writes, stamped with the time the count was read
        self._save_view_count = await p(
            "UPDATE stories USING TIMESTAMP ? AND TTL ? SET view_count = ? WHERE author_id = ? AND story_id = ?"
        )
        self._open_view_bucket = await p("UPDATE stories_by_id USING TTL ? SET view_bucket = ? WHERE story_id = ?")
        return self

    # --- stories --------------------------------------------------------------
    async def insert(self, author_id: int, story_id: int, media: dict[str, tuple[str, int, int]], preview: str,
                     created_at: datetime, expires_at: datetime) -> None:
        """The author's row, then the id lookup: a story that can be viewed is always listed."""
        ttl = row_ttl_s(expires_at)
        await self._cass.execute(self._insert, (author_id, story_id, media, preview, created_at, expires_at, ttl))
        await self._cass.execute(self._insert_by_id, (story_id, author_id, expires_at, ttl))

    async def delete(self, author_id: int, story_id: int) -> None:
        await self._cass.execute(self._delete_by_id, (story_id,))
        await self._cass.execute(self._delete, (author_id, story_id))

    async def live_count(self, author_id: int) -> int:
        return (await self._cass.one(self._live_count, (author_id,))).n

    async def page(self, author_id: int, after: int, limit: int) -> list:
        """Live stories of the author after story id `after`, oldest first."""
        rows = await self._cass.rows(self._page, (author_id, after, limit))
        # a late count write alone is no story; a row in its last second (TTLs are whole seconds) is gone
        return [row for row in rows if row.created_at is not None and is_live(row.expires_at)]

    async def get(self, author_id: int, story_id: int):
        """The author's row of the story as stored (a late count write alone has no `media`), or None."""
        return await self._cass.one(self._get, (author_id, story_id))

    async def media_from_token(self, from_token: int, limit: int) -> list:
        """(author_id, story_id, media) of up to `limit` rows from a token position on (loadtest/footprint.py's
        random samples)."""
        return await self._cass.rows(self._media_from, (from_token, limit))

    async def live_ids(self, author_id: int) -> list[tuple[int, datetime]]:
        rows = await self._cass.rows(self._live_ids, (author_id,))
        return [(row.story_id, row.expires_at) for row in rows if row.expires_at is not None
                and is_live(row.expires_at)]

    async def by_id(self, story_id: int):
        """(story_id, author_id, expires_at, view_bucket) of a live story, or None."""
        row = await self._cass.one(self._by_id, (story_id,))
        if row is None or row.author_id is None or not is_live(row.expires_at):
            return None
        return row

    async def stored_by_id(self, story_id: int):
        """The `stories_by_id` row (story_id, author_id, expires_at, view_bucket) as stored, or None: in its
        last second too, when `by_id` already calls the story expired (loadtest/audit.py checks an acknowledged
        story's row with it)."""
        return await self._cass.one(self._by_id, (story_id,))

    # --- views ----------------------------------------------------------------
    async def claim_view(self, story, viewer_id: int, at: datetime) -> ViewClaim:
        """Record that the viewer saw the story, unless already recorded: the first view fixes its
        bucket and time, so every later view (and every retry) names the same ones."""
        result = await self._cass.execute(
            self._claim_view,
            (story.story_id, viewer_id, at, story.view_bucket or 0, max(1, row_ttl_s(story.expires_at))),
        )
        if result.was_applied:
            return ViewClaim(True, story.view_bucket or 0, at)
        row = result.current_rows[0]
        return ViewClaim(False, row.bucket, row.viewed_at)

    async def view(self, story_id: int, viewer_id: int):
        """The viewer's `story_views` row (viewed_at, bucket), or None, read at LOCAL_SERIAL: a claim left half
        done by a request that failed mid-transaction is finished first, so the answer is the claim's."""
        rows = await self._cass.rows(self._view, (story_id, viewer_id), consistency=ConsistencyLevel.LOCAL_SERIAL)
        return rows[0] if rows else None

    async def save_view_count(self, story, count: int, read_at_us: int) -> None:
        ttl = row_ttl_s(story.expires_at)
        if ttl > 0:
            await self._cass.execute(self._save_view_count, (read_at_us, ttl, count, story.author_id, story.story_id))

    async def open_view_bucket(self, story, bucket: int) -> None:
        ttl = row_ttl_s(story.expires_at)
        if ttl > 0:
            await self._cass.execute(self._open_view_bucket, (ttl, bucket, story.story_id))

    # --- the tray -------------------------------------------------------------
    async def push(self, reader_ids: Iterable[int], author_id: int, username: str, story_id: int,
                   expires_at: datetime, concurrency: int = 128) -> None:
        """Put a live story of the author in each reader's tray (repeating it changes nothing)."""
        ttl = row_ttl_s(expires_at)
        if ttl > 0:
            await self._cass.execute_many(
                self._push, [(ttl, {story_id: expires_at}, username, reader, author_id) for reader in reader_ids],
                concurrency,
            )

    async def mark_seen(self, reader_id: int, author_id: int, story_id: int, expires_at: datetime) -> None:
        ttl = row_ttl_s(expires_at)
        if ttl > 0:
            await self._cass.execute(self._mark_seen, (ttl, {story_id}, reader_id, author_id))

    async def tray(self, reader_id: int) -> list:
        return await self._cass.all_rows(self._tray, (reader_id,), fetch_size=TRAY_FETCH)

    async def tray_row(self, reader_id: int, author_id: int):
        return await self._cass.one(self._tray_row, (reader_id, author_id))

    async def drop_tray_row(self, reader_id: int, author_id: int) -> None:
        await self._cass.execute(self._drop_tray_row, (reader_id, author_id))


class StoryMediaLog:
    """`story_media_expiry`: the media keys of every story, by the minute the story expires.

    `progress` names the sweeper's row in `story_sweep_progress` (tests sweep under their own)."""

    def __init__(self, cass: CassandraSession, progress: str = "stories") -> None:
        self._cass = cass
        self._progress = progress

    async def prepare(self) -> StoryMediaLog:
        p = self._cass.prepare
        self._record = await p(
            "INSERT INTO story_media_expiry (minute, shard, story_id, expires_at, keys) VALUES (?, ?, ?, ?, ?)"
            " USING TTL ?"
        )
        self._entries = await p(
            "SELECT story_id, expires_at, keys FROM story_media_expiry WHERE minute = ? AND shard = ?"
        )
        self._forget = await p("DELETE FROM story_media_expiry WHERE minute = ? AND shard = ? AND story_id = ?")
        self._settled = await p("SELECT settled_minute FROM story_sweep_progress WHERE name = ?")
        self._mark_settled = await p("UPDATE story_sweep_progress SET settled_minute = ? WHERE name = ?")
        return self

    async def record(self, story_id: int, expires_at: datetime, keys: Iterable[str]) -> ExpiryPlace:
        place = ExpiryPlace(expiry_minute(expires_at), story_id % EXPIRY_SHARDS)
        ttl = max(1, row_ttl_s(expires_at)) + EXPIRY_RECORD_EXTRA_S
        await self._cass.execute(self._record, (place.minute, place.shard, story_id, expires_at, set(keys), ttl))
        return place

    async def entries(self, place: ExpiryPlace) -> list:
        return await self._cass.all_rows(self._entries, (place.minute, place.shard), fetch_size=1000)

    async def forget(self, place: ExpiryPlace, story_id: int) -> None:
        await self._cass.execute(self._forget, (place.minute, place.shard, story_id))

    async def settled_minute(self) -> int | None:
        row = await self._cass.one(self._settled, (self._progress,))
        return None if row is None else row.settled_minute

    async def mark_settled(self, minute: int) -> None:
        await self._cass.execute(self._mark_settled, (minute, self._progress))
