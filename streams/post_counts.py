"""Post events -> `users.post_count`, recounted from `posts_by_user` (see app/storage/recount.py), and deletes
finished.

`recount_timeline` serves this agent and streams/hashtag_counts.py (`hashtags.post_count`). A delete publishes
PostDeleted before it removes anything, so a request that fails or dies after its event leaves the `posts`
row while the feeds and counts drop the post; `finish_deletes` removes the row (and tombstones the cached
post, as the request does first), so the post is gone however far its request got."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import faust

from app.errors import Unavailable
from app.events import PostCreated, PostDeleted
from app.ids import month_bucket
from app.settings import Settings
from app.storage.post_cache import PostCache
from app.storage.posts import PostRepository
from app.storage.recount import BucketRecounter
from app.storage.timelines import BucketedTimeline
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


def author_month(e: PostCreated | PostDeleted) -> Iterable[tuple]:
    """Where a post sits in `posts_by_user`: its author's month bucket."""
    return ((e.actor_id, month_bucket(e.post_id)),)


async def recount_timeline(
    recounter: BucketRecounter, timeline: BucketedTimeline, events: list[PostCreated | PostDeleted],
    places: Callable[[PostCreated | PostDeleted], Iterable[tuple[int | str, int]]],
) -> dict[int | str, int]:
    """Recount every (key, bucket) of `timeline` the post events touch, then their totals (returned by key).

    `places(event)` names where the event's post sits (its author's month, each tag's hour). The API
    publishes PostDeleted before it removes the rows; removing them here too (idempotent) makes sure
    the recount cannot still see the post."""
    deleted = [e for e in events if isinstance(e, PostDeleted)]
    await asyncio.gather(*(timeline.remove(key, bucket, e.post_id) for e in deleted for key, bucket in places(e)))
    buckets = {place for e in events for place in places(e)}
    await asyncio.gather(*(recounter.recount_bucket(key, bucket) for key, bucket in buckets))
    keys = sorted({key for key, _ in buckets})
    return dict(zip(keys, await asyncio.gather(*(recounter.save_total(key) for key in keys)), strict=True))


async def finish_deletes(posts: PostRepository, cache: PostCache, events: list[PostCreated | PostDeleted]) -> None:
    """Delete the rows of the deleted posts (idempotent), each cached post tombstoned first; raises while
    Redis cannot be told, so the batch is retried then rather than a deleted post served from the cache."""
    deleted = [e for e in events if isinstance(e, PostDeleted)]
    for event in deleted:
        if not await cache.note_deleted(event.post_id, event.actor_id):
            raise Unavailable("the post cache (Redis) could not tombstone a deleted post")
    await asyncio.gather(*(posts.delete_row(event.post_id) for event in deleted))


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    # two record types share the topic; faust finds each one's class by the name the record carries
    topic = event_topic(app, settings, "posts")

    @app.agent(topic, name="post_counts")
    async def post_counts(stream) -> None:
        posts = (await until_ready("post_counts", wiring.storage)).posts
        cache = wiring.caches().posts
        recounter, user_posts = posts.user_post_counts, posts.by_user

        async def apply(batch: list[PostCreated | PostDeleted]) -> None:
            await finish_deletes(posts, cache, batch)
            await recount_timeline(recounter, user_posts, batch, author_month)

        await each_batch(stream, "post_counts", apply, size=BATCH_SIZE, within=BATCH_SECONDS, settings=settings)
