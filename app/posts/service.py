"""Posts: create through the media pipeline, read, list, delete; the rules and their order.

Creating a post writes in an order that never leaves a post pointing at missing media:
  1. the image is decoded, filtered and resized (process pool);
  2. the post id and media keys are recorded in `media_sweep`;
  3. the variants are stored; 4. the post row and its timelines are written;
  5. the event is published (a failure undoes 4 and answers 503); 6. the sweep entry is removed.
Media of a request that died between 2 and 6 is collected by the sweeper (app/posts/sweeper.py).
If 4 fails (Cassandra went away) it is undone as far as possible; what cannot be undone yet is
settled by the sweeper after its grace period: it finishes any post whose row exists (timelines
written again, PostCreated published again, both idempotent), since it cannot tell a post whose
client got 503 from one whose sweep entry could not be removed after its 201.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from app.cursors import CursorCodec
from app.errors import Forbidden, Invalid, NotFound, Unavailable
from app.events import EventPublisher, PostCreated, PostDeleted, new_event_fields
from app.ids import IdGenerator, month_bucket
from app.media.filters import FILTERS
from app.media.processing import ProcessedImage
from app.media.processor import ImageProcessor
from app.media.store import MediaStore
from app.posts import text
from app.storage.feed_cache import FeedCache
from app.storage.likes import LikeRepository
from app.storage.media_sweep import MediaSweepLog
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.post_cache import PostCache, PostsRead
from app.storage.posts import PostRepository
from app.storage.user_cache import UserCache
from app.storage.users import UserRepository
from app.text import has_control_characters, has_invisible_controls, iso

log = logging.getLogger(__name__)

VARIANTS = ("original", "large", "medium", "thumbnail")


class MediaRow(NamedTuple):
    """A `media_variant` value, as the driver returns it."""

    key: str
    width: int
    height: int


@dataclass
class PostRow:
    """A `posts` row, as the driver returns it: built in hand while a post is being created."""

    post_id: int
    author_id: int
    caption: str
    hashtags: list[str]
    mentions: list[str]
    location: str
    filter: str | None
    media: dict[str, MediaRow]
    preview: str
    created_at: datetime
    like_count: int = 0
    comment_count: int = 0


@dataclass(frozen=True)
class NewPost:
    image: bytes
    caption: str
    location: str
    filter_name: str | None


@dataclass
class PostService:
    posts: PostRepository
    sweep: MediaSweepLog
    users: UserRepository
    store: MediaStore
    processor: ImageProcessor
    events: EventPublisher
    feed_cache: FeedCache
    ids: IdGenerator
    cursors: CursorCodec
    likes: LikeRepository
    objects: PostCache  # posts, their counts and the newest grid ids, in Redis (app/storage/post_cache.py)
    profiles: UserCache  # authors' profiles, in Redis (app/storage/user_cache.py)
    max_caption_length: int
    max_location_length: int

    # --- create -------------------------------------------------------------
    async def create(self, author_id: int, new: NewPost) -> dict:
        """The new post, as the API shows it."""
        self._check_text(new)
        return await self._create(author_id, new)

    def _check_text(self, new: NewPost) -> None:
        if len(new.caption) > self.max_caption_length:
            raise Invalid(f"caption must be at most {self.max_caption_length} characters", code="caption_too_long")
        if len(new.location) > self.max_location_length:
            raise Invalid(f"location must be at most {self.max_location_length} characters")
        for name, value in (("caption", new.caption), ("location", new.location)):
            if has_control_characters(value):
                raise Invalid(f"{name} must not contain control characters", code="control_characters")
            if has_invisible_controls(value):
                raise Invalid(f"{name} must not contain bidirectional controls or zero-width characters",
                              code="control_characters")
        if "\n" in new.location or "\t" in new.location:
            raise Invalid("location must be one line", code="control_characters")
        if new.filter_name is not None and new.filter_name not in FILTERS:
            raise Invalid(f"unknown filter {new.filter_name!r}; GET /v1/filters lists them", code="unknown_filter")
        if len(text.hashtags(new.caption)) > text.MAX_HASHTAGS:
            raise Invalid(f"a caption may carry at most {text.MAX_HASHTAGS} hashtags", code="too_many_hashtags")

    async def _create(self, author_id: int, new: NewPost) -> dict:
        if not self.events.connected:  # refuse before doing anything that would need undoing
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        processed = await self.processor.process(new.image, new.filter_name)
        post_id = self.ids.next_id()
        keys = {name: f"p/{post_id}/{name}-{secrets.token_hex(6)}.jpg" for name in VARIANTS}
        place = await self.sweep.record(post_id, keys.values(), "upload")
        await self._store_media(processed, keys)
        author = await self.users.get(author_id)
        post = PostRow(
            post_id=post_id, author_id=author_id, caption=new.caption, hashtags=text.hashtags(new.caption),
            mentions=text.mentions(new.caption), location=new.location, filter=new.filter_name,
            media={name: MediaRow(keys[name], processed.variants[name].width, processed.variants[name].height)
                   for name in keys},
            preview=processed.preview, created_at=datetime.now(UTC),
        )
        try:
            await self.posts.insert(
                post.post_id, author_id, post.caption, post.hashtags, post.mentions, post.location, post.filter,
                {name: tuple(variant) for name, variant in post.media.items()}, post.preview, post.created_at,
            )
        except Exception:
            await self._undo_create(post)  # what it cannot undo now, the sweeper settles
            raise
        event = PostCreated(**new_event_fields(author_id), post_id=post_id, hashtags=post.hashtags,
                            mentions=post.mentions)
        try:
            await self.events.publish("posts", author_id, event)
        except Exception as exc:
            await self._undo_create(post)
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable("the post could not be published; retry shortly") from exc
        await self.objects.note_created(post)  # cached, and first in its author's cached grid
        # committed: nothing below may fail the request, or a retry with the same Idempotency-Key would
        # create the post again
        try:
            await self.sweep.forget(place, post_id)
        except Exception:  # the sweeper settles the record later: the post exists, so its media is kept
            log.warning("post %d: could not clear its media_sweep record", post_id, exc_info=True)
        return self._post_json(post, author)

    async def _undo_create(self, post: PostRow) -> None:
        try:
            await self.posts.delete(post)  # the sweeper then removes the media
        except Exception:
            log.exception("post %d: written but neither published nor undone", post.post_id)

    async def _store_media(self, processed: ProcessedImage, keys: dict[str, str]) -> None:
        for name, key in keys.items():  # one at a time: bounded memory and store connections per upload
            variant = processed.variants[name]
            await self.store.put(key, variant.data, variant.content_type)

    # --- read ---------------------------------------------------------------
    async def get(self, post_id: int, viewer_id: int) -> dict:
        posts = await self.hydrate([post_id], viewer_id)
        if not posts:
            raise NotFound("no such post", code="post_not_found")
        return posts[0]

    async def hydrate(self, post_ids: list[int], viewer_id: int, rows: dict | None = None) -> list[dict]:
        """Posts as the API shows them, in the given order; missing (deleted) ones left out.

        `rows` are `posts` rows the caller already read (post id -> row); the others come from the post
        cache in one round trip, with their counts and authors, and what it lacks from Cassandra.
        `liked_by_me` is read at the same time (LikeRepository.liked_among: one read per month)."""
        rows = dict(rows or {})
        wanted = [pid for pid in post_ids if pid not in rows]
        read, liked = await asyncio.gather(self.objects.read_posts(wanted), self.likes.liked_among(viewer_id, post_ids))
        return await self._render(post_ids, rows, read, liked)

    async def _render(self, post_ids: list[int], rows: dict, read: PostsRead | None, liked: set[int]) -> list[dict]:
        """`read`: what the post cache held of the posts not in `rows` (None: Redis is away, so every
        post not in `rows` and every author is read from Cassandra)."""
        wanted = [pid for pid in post_ids if pid not in rows]
        if read is None:
            rows.update(await self.posts.get_many(wanted))
            authors: dict = {}
        else:
            rows.update(read.posts)
            for pid in read.deleted:
                rows.pop(pid, None)  # tombstoned: deleted, even if a caller's row was read before
            if read.missing:
                fetched = await self.posts.get_many(read.missing)
                rows.update(fetched)
                await self.objects.fill(fetched.values())
            authors = dict(read.authors)
        present = [pid for pid in post_ids if pid in rows]
        authors.update(await self._authors({rows[pid].author_id for pid in present} - authors.keys(),
                                           cached=read is not None))
        return [self._post_json(rows[pid], authors.get(rows[pid].author_id), pid in liked) for pid in present]

    async def _authors(self, user_ids: set[int], cached: bool) -> dict:
        """Profiles from the user cache (when Redis answers), the others from Cassandra, filled in."""
        if not user_ids:
            return {}
        found = (await self.profiles.get_many(user_ids) if cached else None) or {}
        rest = user_ids - found.keys()
        if rest:
            rows = await self.users.get_many(rest)
            if cached:
                await self.profiles.fill(rows.values())
            found.update(rows)
        return found

    def _post_json(self, row, author, liked_by_me: bool = False) -> dict:
        media = row.media or {}
        return {
            "id": str(row.post_id),
            "author": {"id": str(row.author_id), "username": author.username if author else None},
            "caption": row.caption or "",
            "hashtags": list(row.hashtags or ()),
            "mentions": list(row.mentions or ()),
            "location": row.location or "",
            "filter": row.filter,
            "media": {
                name: {"url": self.store.url(v.key), "width": v.width, "height": v.height}
                for name, v in media.items()
            },
            "preview": row.preview,
            "like_count": row.like_count or 0,
            "comment_count": row.comment_count or 0,
            "liked_by_me": liked_by_me,
            "created_at": iso(row.created_at),
        }

    async def list_by_user(self, user_id: int, viewer_id: int, limit: int, cursor: str | None):
        """A page of the user's grid. The common case is one Redis round trip (the page's ids from the
        cached grid, its posts, counts and the user's profile) and one Cassandra read (`liked_by_me`)."""
        bucket, before = self.cursors.decode_ints("user-posts", cursor, "b", "a") or (LATEST_BUCKET, NO_UPPER_BOUND)
        first_page = cursor is None
        grid = await self.objects.read_grid(user_id, None if first_page else before, limit)
        user = grid.owner if grid is not None else None
        if user is None:
            user = await self.users.get(user_id)
            if grid is not None and user is not None:
                await self.profiles.fill([user])
        if user is None or user.username is None:
            raise NotFound("no such user", code="user_not_found")
        if grid is not None and grid.ids is not None:
            ids, read = grid.ids, grid.found
        else:
            ids = await self._grid_ids(user_id, bucket, before, limit, grid.version if grid and first_page else None)
            read = await self.objects.read_posts(ids) if grid is not None else None
        next_cursor = None
        if len(ids) == limit:
            next_cursor = self.cursors.encode("user-posts", {"b": month_bucket(ids[-1]), "a": ids[-1]})
        liked = await self.likes.liked_among(viewer_id, ids)
        return await self._render(ids, {}, read, liked), next_cursor

    async def _grid_ids(self, user_id: int, bucket: int, before: int, limit: int, version: str | None) -> list[int]:
        """A page of ids from `posts_by_user`. With a `version` (a first page, the cache answering), the
        newest grid_cache_ids are read and cached for the pages that follow."""
        if version is None:
            ids, _ = await self.posts.by_user.page(user_id, bucket, before, limit)
            return ids
        newest = max(limit, self.objects.grid_ids)
        ids, _ = await self.posts.by_user.page(user_id, LATEST_BUCKET, NO_UPPER_BOUND, newest)
        await self.objects.store_grid(user_id, version, ids, complete=len(ids) < newest)
        return ids[:limit]

    # --- delete -------------------------------------------------------------
    async def delete(self, user_id: int, post_id: int) -> None:
        post = await self.posts.get(post_id)
        if post is None:
            raise NotFound("no such post", code="post_not_found")
        if post.author_id != user_id:
            raise Forbidden("only the author can delete a post", code="not_post_author")
        keys = [variant.key for variant in (post.media or {}).values()]
        place = await self.sweep.record(post_id, keys, "delete")
        # published first: with Kafka down nothing is deleted and the client gets 503
        event = PostDeleted(**new_event_fields(user_id), post_id=post_id, hashtags=list(post.hashtags or ()))
        await self.events.publish("posts", user_id, event)
        await self.objects.note_deleted(post_id, user_id)  # tombstoned before the row goes: never served again
        await self.posts.delete(post)
        await self.feed_cache.note_deleted(post_id)  # cached feed pages stop showing it at once
        await self.store.delete_many(keys)
        await self.sweep.forget(place, post_id)

