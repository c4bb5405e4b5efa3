"""Comment events -> deletions applied, and exact `posts.comment_count` and `comments.reply_count`.

For each batch the worker first applies the deletions the events announce (the API publishes a
delete before it writes it, so the worker may be first; applying it twice changes nothing).
Then it reads every changed comment's row (the truth) and places it in two counted sets
(app/storage/counted_set.py): the post's live comments, replies included, and, for a reply, its
parent's live replies. A comment is a member while its row exists and is not deleted, in the
bucket of its id's hour. The totals are written as absolute values, stamped with the time they
were read, so a later recount always wins. Events are keyed by post, so one worker owns a post's
counts; a replayed or duplicated event finds its comment already in place.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

import faust

from app.events import CommentChanged
from app.ids import hour_bucket
from app.settings import Settings
from app.storage.comments import CommentRepository
from app.storage.counted_set import CountedSet, Placement
from app.storage.post_cache import PostCache
from app.storage.posts import PostRepository
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

BATCH_SECONDS = 0.5



@dataclass
class CountPlan:
    """What one batch changes: each post's and each parent comment's members, and where they go."""

    deletions: list[CommentChanged] = field(default_factory=list)
    post_comments: dict[int, dict[int, Placement]] = field(default_factory=lambda: defaultdict(dict))
    replies: dict[int, dict[int, Placement]] = field(default_factory=lambda: defaultdict(dict))


def plan_counts(events: list[CommentChanged], live: set[int]) -> CountPlan:
    """Placements for the comments the events name; `live` are those whose row exists, not deleted."""
    plan = CountPlan()
    latest = {event.comment_id: event for event in events}  # a comment's deletion comes after its creation
    for comment_id, event in latest.items():
        if not event.created:
            plan.deletions.append(event)
        bucket = hour_bucket(comment_id)
        placement = Placement(bucket if comment_id in live and event.created else None, {bucket})
        plan.post_comments[event.post_id][comment_id] = placement
        if event.parent_id is not None:
            plan.replies[event.parent_id][comment_id] = placement
    return plan


class CommentCounter:
    def __init__(self, comments: CommentRepository, posts: PostRepository, cache: PostCache | None = None) -> None:
        self.comments = comments
        self.posts = posts
        self.cache = cache  # where pages read comment counts (app/storage/post_cache.py)
        self.post_comments = comments.live_comments
        self.replies = comments.live_replies

    async def apply(self, events: list[CommentChanged]) -> None:
        events = await self._on_live_posts(events)
        ids = {event.comment_id for event in events}
        rows = await self.comments.get_many(ids)
        plan = plan_counts(events, live={cid for cid, row in rows.items() if not row.deleted})
        # deletions the API announced and may not have written yet; a missing row is not revived
        await asyncio.gather(
            *(self.comments.mark_deleted(e.comment_id, e.parent_id) for e in plan.deletions if e.comment_id in rows)
        )
        await asyncio.gather(
            *(self.post_comments.apply(post_id, members) for post_id, members in plan.post_comments.items()),
            *(self.replies.apply(parent_id, members) for parent_id, members in plan.replies.items()),
        )
        totals = await asyncio.gather(
            *(self._save_total(self.post_comments, self.posts.save_comment_count, pid) for pid in plan.post_comments),
            *(self._save_total(self.replies, self.comments.save_reply_count, cid) for cid in plan.replies),
        )
        if self.cache is not None:  # raises while Redis is away: the batch is retried, no count left stale
            await self.cache.save_comment_counts(dict(zip(plan.post_comments, totals, strict=False)))

    async def _on_live_posts(self, events: list[CommentChanged]) -> list[CommentChanged]:
        """The events of posts that still exist: a deleted post's comments no longer count, and a
        count write would leave a stray `posts` row."""
        post_ids = list({event.post_id for event in events})
        rows = await asyncio.gather(*(self.posts.like_state(pid) for pid in post_ids))  # a narrow read of the row
        live = {pid for pid, row in zip(post_ids, rows, strict=True) if row is not None}
        return [event for event in events if event.post_id in live]

    async def _save_total(self, counted: CountedSet, save, owner: int) -> int:
        total, read_at = await counted.total(owner)
        await save(owner, total, read_at)
        return total


async def make_counter(wiring: Wiring) -> CommentCounter:
    storage = await wiring.storage()
    return CommentCounter(storage.comments, storage.posts, wiring.caches().posts)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    topic = event_topic(app, settings, "comments")

    @app.agent(topic, name="comment_counts")
    async def comment_counts(stream) -> None:
        counter = await until_ready("comment_counts", lambda: make_counter(wiring))
        await each_batch(stream, "comment_counts", counter.apply, size=settings.comment_worker_batch_size,
                         within=BATCH_SECONDS, settings=settings, value_type=CommentChanged)
