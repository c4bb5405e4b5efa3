"""Comments: create, list, delete; the rules and the order of the writes (docs/comments.md).

Nesting is one level, as on Instagram: a reply's parent is always a top-level comment, and a
reply to a reply is attached to that reply's parent. Both lists are newest first.

Creating, in order (the pattern of posts' `_create`):
  1. refuse with 503 if the event log is down, before writing anything;
  2. check the post and the parent; 3. write the row, then its list entry;
  4. publish CommentChanged. If that fails the comment is taken back (entry and row) and the
     client gets 503 with nothing created; a "deleted" event is then attempted too, in case
     Kafka took the first one after all, so that the worker re-reads the missing row.
     If step 3 fails (Cassandra went away), the row may have landed: a "deleted" event goes out
     before the 503, and the worker marks the row deleted (if it exists) once Cassandra is back.
  Before step 3 that "deleted" event is recorded in the outbox (app/outbox.py), and the record is
  cleared after step 4 (or once the "deleted" event is out). A comment whose record cannot be cleared
  in time is answered 503, and whatever could not be published or taken back (Kafka and then Cassandra
  failing, or the process dying) the reconciler finishes by publishing the record: the comment ends
  deleted, as the 503 said.
Deleting, in order (the pattern of posts' `delete`): publish first, so with Kafka down nothing
is deleted and the client gets 503; then mark the row deleted. The comment worker applies the
same deletion when it reads the event, so a request that dies in between still ends deleted and
counted out. Deleting a deleted comment answers 204 and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.cursors import CursorCodec
from app.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from app.events import CommentChanged, EventPublisher, new_event_fields
from app.ids import IdGenerator, hour_bucket
from app.outbox import Outbox
from app.posts.text import mentions
from app.ranking.impressions import ImpressionLog
from app.storage.comments import CommentRepository, CommentRow
from app.storage.outbox import Intent
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.posts import PostRepository
from app.storage.timelines import BucketedTimeline
from app.storage.users import UserRepository
from app.text import has_control_characters, has_invisible_controls, iso

log = logging.getLogger(__name__)

MAX_PAGE_READS = 5  # list reads one page may make while skipping deleted comments, then it answers short


def clean_text(text: str, max_length: int) -> str:
    """The comment text as stored (surrounding white space removed); Invalid (422) when it may not be."""
    text = text.strip()
    if not text:
        raise Invalid("text must not be empty", code="empty_comment")
    if len(text) > max_length:
        raise Invalid(f"text must be at most {max_length} characters", code="comment_too_long")
    if has_control_characters(text):
        raise Invalid("text must not contain control characters", code="control_characters")
    if has_invisible_controls(text):
        raise Invalid("text must not contain bidirectional controls or zero-width characters",
                      code="control_characters")
    return text


def listed_at_top_level(row) -> bool:
    """A deleted top-level comment stays listed, as "deleted", only while it has live replies."""
    return not row.deleted or (row.reply_count or 0) > 0


def listed_as_reply(row) -> bool:
    return not row.deleted


def comment_json(row, author) -> dict:
    deleted = bool(row.deleted)
    return {
        "id": str(row.comment_id),
        "post_id": str(row.post_id),
        "parent_id": None if row.parent_id is None else str(row.parent_id),
        "author": None if deleted else {"id": str(row.author_id), "username": author.username if author else None},
        "text": "" if deleted else row.text or "",
        "mentions": [] if deleted else list(row.mentions or ()),
        "reply_count": row.reply_count or 0,
        "deleted": deleted,
        "created_at": iso(row.created_at),
    }


@dataclass
class CommentService:
    comments: CommentRepository
    posts: PostRepository
    users: UserRepository
    events: EventPublisher
    ids: IdGenerator
    cursors: CursorCodec
    max_comment_length: int
    outbox: Outbox | None = None  # None: no outbox records (tools and tests)
    impressions: ImpressionLog | None = None  # logs comment opens (app/ranking/impressions.py); None: not logged

    # --- create -------------------------------------------------------------
    async def create(self, author_id: int, post_id: int, text: str, parent_id: int | None) -> dict:
        """The new comment, as the API shows it."""
        text = clean_text(text, self.max_comment_length)
        return await self._create(author_id, post_id, text, parent_id)

    async def _create(self, author_id: int, post_id: int, text: str, parent_id: int | None) -> dict:
        if not self.events.connected:  # refuse before writing a comment no worker would hear of
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        post = await self._post(post_id)
        parent = None if parent_id is None else await self._parent_for_reply(post_id, parent_id)
        author = await self.users.get(author_id)  # read before writing: nothing after the publish may fail
        row = CommentRow(
            comment_id=self.ids.next_id(), post_id=post_id, parent_id=parent.comment_id if parent else None,
            author_id=author_id, text=text, mentions=mentions(text), created_at=datetime.now(UTC),
        )
        intent = await self._record(author_id, post, row, parent)
        try:
            await self.comments.insert(row)
        except Exception:
            await self._announce_deleted(author_id, post, row, parent, intent)
            raise
        try:
            await self._publish(author_id, post, row, parent, created=True)
        except Exception as exc:
            await self._take_back(author_id, post, row, parent, intent)
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable("the comment could not be published; retry shortly") from exc
        await self._commit(author_id, post, row, parent, intent)
        return comment_json(row, author)

    async def _record(self, actor_id: int, post, row: CommentRow, parent) -> Intent | None:
        """Before the row is written: its deletion, which the reconciler publishes unless this request clears
        it (app/outbox.py). A failure here fails the request before anything is written."""
        if self.outbox is None:
            return None
        return await self.outbox.record("comments", row.post_id, self._event(actor_id, post, row, parent,
                                                                             created=False))

    async def _commit(self, actor_id: int, post, row: CommentRow, parent, intent: Intent | None) -> None:
        """Clear the outbox record of a published comment, the last step before its 201. If it cannot be
        cleared (in time), the reconciler will publish the deletion: answer 503, and send that deletion now."""
        if intent is None:
            return
        try:
            await self.outbox.clear(intent)
        except Exception as exc:
            log.warning("comment %d: published, but its outbox record was not cleared (%r); taken back",
                        row.comment_id, exc)
            await self._announce_deleted(actor_id, post, row, parent, None)
            raise Unavailable("the comment could not be confirmed; retry shortly") from exc

    async def _parent_for_reply(self, post_id: int, parent_id: int):
        """The top-level comment a reply to `parent_id` attaches to."""
        target = await self.comments.get(parent_id)
        if target is None:
            raise Conflict("parent_id names no comment", code="parent_not_found")
        if target.post_id != post_id:
            raise Conflict("parent_id is a comment on another post", code="parent_on_other_post")
        if target.deleted:
            raise Conflict("the comment replied to was deleted", code="parent_deleted")
        if target.parent_id is None:
            return target
        top = await self.comments.get(target.parent_id)  # a reply to a reply joins its thread
        if top is None:
            raise Conflict("parent_id names no comment", code="parent_not_found")
        return top

    async def _take_back(self, actor_id: int, post, row: CommentRow, parent, intent: Intent | None) -> None:
        try:
            await self.comments.remove(row)
        except Exception:
            log.exception("comment %d: written but neither published nor taken back; left to the outbox",
                          row.comment_id)
            return
        # in case Kafka took the first event after all
        await self._announce_deleted(actor_id, post, row, parent, intent)

    async def _announce_deleted(self, actor_id: int, post, row: CommentRow, parent, intent: Intent | None) -> None:
        """Tell the worker this comment is not to be: it marks the row deleted if some of it landed, and
        re-reads it for the counts. Best effort: the outbox record, if any, is the same deletion, cleared once
        this one is out and otherwise published by the reconciler."""
        try:
            await self._publish(actor_id, post, row, parent, created=False)
        except Exception:
            log.warning("comment %d: not created, but its deletion could not be published; left to the outbox",
                        row.comment_id)
            return
        if self.outbox is not None:
            await self.outbox.clear_best_effort(intent, f"comment {row.comment_id}")

    async def _publish(self, actor_id: int, post, comment, parent, *, created: bool) -> None:
        event = self._event(actor_id, post, comment, parent, created=created)
        await self.events.publish("comments", comment.post_id, event)

    @staticmethod
    def _event(actor_id: int, post, comment, parent, *, created: bool) -> CommentChanged:
        return CommentChanged(
            **new_event_fields(actor_id), post_id=comment.post_id, post_author_id=post.author_id,
            comment_id=comment.comment_id, parent_id=comment.parent_id,
            parent_author_id=parent.author_id if parent is not None else None,
            mentions=list(comment.mentions or ()), created=created,
        )

    # --- read ---------------------------------------------------------------
    async def top_level(self, post_id: int, limit: int, cursor: str | None,
                        reader_id: int | None = None) -> tuple[list[dict], str | None]:
        """A page of the post's top-level comments, newest first, and the next page's cursor. `reader_id`
        reading the first page opens the comments: a ranking label (docs/ranking.md#the-ranking-log)."""
        post = await self._post(post_id)
        rows, next_cursor = await self._page(
            self.comments.top_level, post_id, f"comments:{post_id}", cursor, limit, listed_at_top_level
        )
        page = await self._json(rows)
        if cursor is None and reader_id is not None and self.impressions is not None:
            self.impressions.comments_opened(reader_id, post_id, post.author_id)  # off the request, best effort
        return page, next_cursor

    async def replies(self, comment_id: int, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """A page of a comment's live replies, newest first (a reply has none: one level of nesting). A deleted
        comment's replies are there as long as it is listed (it has live replies), 404 like the comment after."""
        comment = await self.comments.get(comment_id)
        if comment is None or not listed_at_top_level(comment) or await self.posts.get(comment.post_id) is None:
            raise NotFound("no such comment", code="comment_not_found")
        rows, next_cursor = await self._page(
            self.comments.replies, comment_id, f"replies:{comment_id}", cursor, limit, listed_as_reply
        )
        return await self._json(rows), next_cursor

    async def _page(
        self, timeline: BucketedTimeline, key: int, kind: str, cursor: str | None, limit: int,
        listed: Callable[[object], bool],
    ) -> tuple[list, str | None]:
        """Up to `limit` listed rows after the cursor's position; the cursor is the last id looked at,
        so a comment that arrives later (a newer id) is never in a later page and nothing repeats."""
        bucket, before = self.cursors.decode_ints(kind, cursor, "b", "a") or (LATEST_BUCKET, NO_UPPER_BOUND)
        kept: list = []
        for _ in range(MAX_PAGE_READS):
            ids, _ = await timeline.page(key, bucket, before, limit)
            rows = await self.comments.get_many(ids)
            for comment_id in ids:
                row = rows.get(comment_id)
                if row is not None and listed(row):
                    kept.append(row)
                    if len(kept) == limit:
                        return kept, self._cursor(kind, comment_id)
            if len(ids) < limit:
                return kept, None
            bucket, before = hour_bucket(ids[-1]), ids[-1]
        return kept, self._cursor(kind, before)

    def _cursor(self, kind: str, after_id: int) -> str:
        return self.cursors.encode(kind, {"b": hour_bucket(after_id), "a": after_id})

    async def _json(self, rows: list) -> list[dict]:
        authors = await self.users.get_many({row.author_id for row in rows if not row.deleted})
        return [comment_json(row, authors.get(row.author_id)) for row in rows]

    async def _post(self, post_id: int):
        post = await self.posts.get(post_id)
        if post is None:
            raise NotFound("no such post", code="post_not_found")
        return post

    # --- delete -------------------------------------------------------------
    async def delete(self, user_id: int, comment_id: int) -> None:
        comment = await self.comments.get(comment_id)
        post = None if comment is None else await self.posts.get(comment.post_id)
        if post is None:  # no such comment, or its post is gone and the comment with it
            raise NotFound("no such comment", code="comment_not_found")
        if user_id not in (comment.author_id, post.author_id):
            raise Forbidden("only the comment's author or the post's author can delete it", code="not_comment_author")
        if comment.deleted:
            return
        parent = None if comment.parent_id is None else await self.comments.get(comment.parent_id)
        # published first: with Kafka down nothing is deleted and the client gets 503
        await self._publish(user_id, post, comment, parent, created=False)
        await self.comments.mark_deleted(comment.comment_id, comment.parent_id)
