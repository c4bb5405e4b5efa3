"""Stories: post one, list an author's live ones, view, who viewed, and the reader's tray.

Posting a story writes in an order that never leaves a story pointing at missing media:
  1. the image is decoded and resized (process pool);
  2. its media keys are recorded in `story_media_expiry` under the minute the story expires;
  3. the variants are stored; 4. the rows are written, each with the story's TTL;
  5. StoryPosted is published (a failure undoes 4 and answers 503).
The story sweeper (app/stories/sweeper.py) removes the media once the story has expired, whether
or not the request got that far. Nothing else is ever deleted: the rows expire.

Viewing: the first view claims the (story, viewer) row in `story_views` with IF NOT EXISTS, which
fixes the `story_viewers` bucket the viewer is counted in; the reader's tray row is marked seen;
StoryViewed is published on every view (so a retry after a failed publish still counts), and the
view worker (streams/story_views.py) adds the viewer to the story's counted set exactly once. Before
the claim, a recheck of the view is recorded in the outbox (app/outbox.py) and cleared once the event
is out: a view claimed whose event never went out (the publish failed and the client did not retry, or
the process died) is still counted, when the reconciler publishes the recheck.

The tray (docs/stories.md): one read of the reader's `story_tray` partition, which the tray worker
fills by pushing each story to the author's followers, plus the live story ids of the followed
celebrities (pulled, as in the feed), the reader's affinity and a follow check of the authors the
page shows. The followed celebrities and the affinity come from the reader's feed candidate set in
Redis (one round trip) when it is there and not due for a refill, else from Cassandra. Ordered by:
any unseen story first, then affinity, then the newest story.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.cursors import CursorCodec
from app.errors import Conflict, Forbidden, NotFound, Unavailable
from app.events import EventPublisher, StoryPosted, StoryViewed, new_event_fields
from app.ids import IdGenerator, id_time
from app.media.processor import ImageProcessor
from app.media.store import MediaStore
from app.outbox import Outbox
from app.storage.affinity import AffinityRepository
from app.storage.feed import FeedRepository
from app.storage.feed_cache import FeedCache
from app.storage.follows import FollowRepository
from app.storage.paging import FIRST_MEMBER, LATEST_BUCKET
from app.storage.stories import StoryMediaLog, StoryRepository
from app.storage.users import UserRepository
from app.text import iso

log = logging.getLogger(__name__)

VARIANTS = ("original", "large", "medium", "thumbnail")
FOLLOW_CHECK_CHUNK = 100  # FollowRepository.is_following reads at most this many at once
CELEBRITY_STORIES_TTL_S = 5.0  # a celebrity's live story ids are shared by every tray read for this long
MAX_REMEMBERED = 100_000  # usernames and celebrities' stories kept per process (cleared when full)


@dataclass(frozen=True)
class TrayEntry:
    author_id: int
    username: str | None
    story_ids: frozenset[int]
    seen: frozenset[int]
    affinity: int

    @property
    def unseen_count(self) -> int:
        return len(self.story_ids - self.seen)

    @property
    def latest(self) -> int:
        return max(self.story_ids)

    def rank_key(self) -> tuple[int, int, int, int]:
        """Ascending order of the tray: unseen first, then affinity, then the newest story, then id."""
        return (0 if self.unseen_count else 1, -self.affinity, -self.latest, self.author_id)


def order_tray(entries: list[TrayEntry]) -> list[TrayEntry]:
    return sorted(entries, key=TrayEntry.rank_key)


@dataclass
class StoryService:
    stories: StoryRepository
    media_log: StoryMediaLog
    users: UserRepository
    follows: FollowRepository
    feed: FeedRepository
    affinity: AffinityRepository
    store: MediaStore
    processor: ImageProcessor
    events: EventPublisher
    ids: IdGenerator
    cursors: CursorCodec
    ttl_s: int
    max_live: int
    feed_cache: FeedCache | None = None  # the readers' candidate sets (None: read everything from Cassandra)
    outbox: Outbox | None = None  # what a view owes the view worker (None: tools and tests without one)
    # per process: usernames never change; a celebrity's stories are read by all their followers' trays
    _usernames: dict[int, str] = field(default_factory=dict, repr=False)
    _celebrity_stories: dict[int, tuple[float, list[tuple[int, datetime]]]] = field(default_factory=dict, repr=False)

    # --- post -----------------------------------------------------------------
    async def create(self, author_id: int, image: bytes) -> dict:
        """The new story, as the API shows it to its author."""
        if not self.events.connected:  # refuse before doing anything that would need undoing
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        if await self.stories.live_count(author_id) >= self.max_live:
            raise Conflict(f"at most {self.max_live} stories can be live at once", code="too_many_stories")
        processed = await self.processor.process(image, None)
        author = await self.users.get(author_id)  # before the writes: nothing after the publish may fail
        story_id = self.ids.next_id()
        created_at = datetime.now(UTC)
        expires_at = created_at + timedelta(seconds=self.ttl_s)
        keys = {name: f"s/{story_id}/{name}-{secrets.token_hex(6)}.jpg" for name in VARIANTS}
        await self.media_log.record(story_id, expires_at, keys.values())
        for name, key in keys.items():  # one at a time: bounded memory and store connections per upload
            variant = processed.variants[name]
            await self.store.put(key, variant.data, variant.content_type)
        media = {name: (keys[name], processed.variants[name].width, processed.variants[name].height) for name in keys}
        await self.stories.insert(author_id, story_id, media, processed.preview, created_at, expires_at)
        event = StoryPosted(**new_event_fields(author_id), story_id=story_id,
                            expires_at_ms=int(expires_at.timestamp() * 1000))
        try:
            await self.events.publish("stories", author_id, event)
        except Exception as exc:
            try:
                await self.stories.delete(author_id, story_id)  # the sweeper removes the media at expiry
            except Exception:
                log.exception("story %d: written but neither published nor undone", story_id)
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable("the story could not be published; retry shortly") from exc
        return {
            **self._media_json(story_id, author_id, author.username if author else None, media, processed.preview,
                               created_at, expires_at),
            "seen_by_me": False,
            "view_count": 0,
        }

    def _media_json(self, story_id: int, author_id: int, username: str | None, media: dict, preview: str | None,
                    created_at: datetime, expires_at: datetime) -> dict:
        return {
            "id": str(story_id),
            "author": {"id": str(author_id), "username": username},
            "media": {name: {"url": self.store.url(key), "width": width, "height": height}
                      for name, (key, width, height) in media.items()},
            "preview": preview,
            "created_at": iso(created_at),
            "expires_at": iso(expires_at),
        }

    # --- an author's stories ----------------------------------------------------
    async def list_by_user(self, author_id: int, viewer_id: int, limit: int, cursor: str | None
                           ) -> tuple[list[dict], str | None]:
        kind = f"stories:{author_id}"
        (after,) = self.cursors.decode_ints(kind, cursor, "a") or (0,)
        author, rows, tray_row = await asyncio.gather(
            self.users.get(author_id), self.stories.page(author_id, after, limit),
            self.stories.tray_row(viewer_id, author_id),
        )
        if author is None or author.username is None:
            raise NotFound("no such user", code="user_not_found")
        seen = set(tray_row.seen or ()) if tray_row is not None else set()
        items = []
        for row in rows:
            story = self._media_json(row.story_id, author_id, author.username, row.media or {}, row.preview,
                                     row.created_at, row.expires_at)
            story["seen_by_me"] = row.story_id in seen
            if viewer_id == author_id:  # the view count is the author's to see
                story["view_count"] = row.view_count or 0
            items.append(story)
        next_cursor = self.cursors.encode(kind, {"a": rows[-1].story_id}) if len(rows) == limit else None
        return items, next_cursor

    # --- views ----------------------------------------------------------------
    async def view(self, viewer_id: int, story_id: int) -> None:
        if not self.events.connected:  # refuse before writing a view no worker would hear of
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        story = await self._live_story(story_id)
        if story.author_id == viewer_id:
            return  # an author's own views are not counted (as on Instagram)
        expires_at_ms = int(_utc(story.expires_at).timestamp() * 1000)
        intent = None
        if self.outbox is not None:  # before the claim: a failure here fails the request before anything is written
            recheck = StoryViewed(**new_event_fields(viewer_id), story_id=story_id, author_id=story.author_id,
                                  bucket=0, viewed_at_ms=0, expires_at_ms=expires_at_ms, recheck=True)
            intent = await self.outbox.record("story_views", story_id, recheck)
        claim = await self.stories.claim_view(story, viewer_id, datetime.now(UTC))
        await self.stories.mark_seen(viewer_id, story.author_id, story_id, story.expires_at)
        event = StoryViewed(
            **new_event_fields(viewer_id), story_id=story_id, author_id=story.author_id, bucket=claim.bucket,
            viewed_at_ms=int(_utc(claim.viewed_at).timestamp() * 1000), expires_at_ms=expires_at_ms,
        )
        await self.events.publish("story_views", story_id, event)
        if self.outbox is not None:
            await self.outbox.clear_best_effort(intent, f"view of story {story_id} by {viewer_id}")

    async def viewers(self, user_id: int, story_id: int, limit: int, cursor: str | None
                      ) -> tuple[list[int], str | None]:
        story = await self._live_story(story_id)
        if story.author_id != user_id:
            raise Forbidden("only the story's author can see who viewed it", code="not_story_author")
        kind = f"story-viewers:{story_id}"
        bucket, after = self.cursors.decode_ints(kind, cursor, "b", "a") or (LATEST_BUCKET, FIRST_MEMBER)
        ids, last_bucket = await self.stories.viewer_pages.page(story_id, bucket, after, limit)
        next_cursor = self.cursors.encode(kind, {"b": last_bucket, "a": ids[-1]}) if len(ids) == limit else None
        return ids, next_cursor

    async def _live_story(self, story_id: int):
        story = await self.stories.by_id(story_id)
        if story is None:
            raise NotFound("no such story, or it has expired", code="story_not_found")
        return story

    # --- the tray ---------------------------------------------------------------
    async def tray(self, reader_id: int, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        kind = "story-tray"
        position = self.cursors.decode_ints(kind, cursor, "s", "f", "l", "i")
        ordered = order_tray(await self.tray_entries(reader_id))
        if position is not None:
            seen_flag, affinity, latest, author = position
            after = (seen_flag, -affinity, -latest, author)
            ordered = [e for e in ordered if e.rank_key() > after]
        # the order does not depend on follows, so only the authors a page shows are checked: rows
        # of authors unfollowed since the push (the worker drops them soon) are skipped
        page: list[TrayEntry] = []
        checked = 0
        while len(page) <= limit and checked < len(ordered):
            chunk = ordered[checked : checked + limit + 1 - len(page)]
            followed = await self._followed_among(reader_id, [e.author_id for e in chunk])
            page += [e for e in chunk if e.author_id in followed]
            checked += len(chunk)
        next_cursor = None
        if len(page) > limit:
            page = page[:limit]
            last = page[-1].rank_key()
            next_cursor = self.cursors.encode(kind, {"s": last[0], "f": -last[1], "l": -last[2], "i": last[3]})
        return [self._tray_json(e) for e in page], next_cursor

    async def tray_entries(self, reader_id: int) -> list[TrayEntry]:
        """Every author in the reader's tray with a live story (followed when it was pushed). Two rounds
        of reads: the reader's partitions, then the celebrities' stories and any usernames not known."""
        rows, (celebrities, affinity) = await asyncio.gather(self.stories.tray(reader_id), self._reader(reader_id))
        now = _naive_utc_now()  # the driver's timestamps are naive UTC: compared as they come, no conversion
        by_author = {row.author_id: row for row in rows}
        stories = {row.author_id: {story_id for story_id, expires_at in (row.story_ids or {}).items()
                                   if expires_at > now} for row in rows}
        usernames = {row.author_id: row.username for row in rows}
        candidates = [author for author, ids in stories.items() if ids] + [
            author for author in celebrities if not stories.get(author)
        ]
        pulled, names = await asyncio.gather(
            asyncio.gather(*(self._celebrity_stories_of(author) for author in celebrities)),
            self._usernames_of([author for author in candidates if not usernames.get(author)]),
        )
        for author, live in zip(celebrities, pulled, strict=True):
            stories.setdefault(author, set()).update(sid for sid, expires_at in live if expires_at > now)
        usernames.update(names)
        entries = []
        for author in candidates:
            if not stories[author]:
                continue  # a followed celebrity with no live story
            row = by_author.get(author)
            entries.append(TrayEntry(
                author_id=author, username=usernames.get(author), story_ids=frozenset(stories[author]),
                seen=frozenset(row.seen or ()) if row is not None else frozenset(), affinity=affinity.get(author, 0),
            ))
        return entries

    async def _reader(self, reader_id: int) -> tuple[list[int], dict[int, int]]:
        """The reader's followed celebrities and interactions: from their feed's candidate set in Redis, which
        the feed refills from the same tables and marks due when a follow changes them; else from Cassandra."""
        context = await self.feed_cache.reader_context(reader_id) if self.feed_cache is not None else None
        if context is not None:
            return context.celebrities, context.interactions
        celebrities, affinity = await asyncio.gather(
            self.feed.followed_celebrities(reader_id), self.affinity.of_reader(reader_id)
        )
        return celebrities, affinity

    async def _celebrity_stories_of(self, author_id: int) -> list[tuple[int, datetime]]:
        """A celebrity's live stories (id, expiry), read at most every few seconds per process: every
        tray of their (many) followers needs them, and a story is seconds old or hours old either way."""
        now = time.monotonic()
        cached = self._celebrity_stories.get(author_id)
        if cached is not None and now - cached[0] < CELEBRITY_STORIES_TTL_S:
            return cached[1]
        live = await self.stories.live_ids(author_id)
        _remember(self._celebrity_stories, author_id, (now, live))
        return live

    async def _usernames_of(self, user_ids: list[int]) -> dict[int, str]:
        known = {uid: self._usernames[uid] for uid in user_ids if uid in self._usernames}
        rows = await self.users.get_many([uid for uid in user_ids if uid not in known])
        for uid, row in rows.items():
            if row.username:
                known[uid] = row.username
                _remember(self._usernames, uid, row.username)
        return known

    async def _followed_among(self, reader_id: int, authors: list[int]) -> set[int]:
        chunks = [authors[i : i + FOLLOW_CHECK_CHUNK] for i in range(0, len(authors), FOLLOW_CHECK_CHUNK)]
        found = await asyncio.gather(*(self.follows.is_following(reader_id, chunk) for chunk in chunks))
        return set().union(*found)

    @staticmethod
    def _tray_json(entry: TrayEntry) -> dict:
        return {
            "author": {"id": str(entry.author_id), "username": entry.username},
            "story_count": len(entry.story_ids),
            "unseen_count": entry.unseen_count,
            "unseen": entry.unseen_count > 0,
            "latest_story_id": str(entry.latest),
            "latest_at": iso(id_time(entry.latest)),  # ids count from ID_EPOCH_MS, not 1970
        }


def _remember(memory: dict, key, value) -> None:
    if len(memory) >= MAX_REMEMBERED:
        memory.clear()
    memory[key] = value


def _naive_utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
