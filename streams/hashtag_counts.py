"""Post events -> `hashtags.post_count`, recounted from `posts_by_hashtag` (see app/storage/recount.py).

Each touched (tag, hour) bucket is counted with COUNT(*) into `hashtag_buckets.post_count`, then
the tag's buckets are summed into `hashtags`: absolute writes, so a replayed event changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import faust

from app.events import PostCreated, PostDeleted
from app.ids import hour_bucket
from app.settings import Settings
from app.storage.recount import BucketRecounter
from app.storage.timelines import BucketedTimeline
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.post_counts import recount_timeline
from streams.retry import until_ready
from streams.search_index import SearchWriter

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


def tag_hours(e: PostCreated | PostDeleted) -> Iterable[tuple]:
    """Where a post sits in `posts_by_hashtag`: the hour bucket of each of its tags."""
    return [(tag, hour_bucket(e.post_id)) for tag in e.hashtags or ()]


async def recount_and_index(recounter: BucketRecounter, timeline: BucketedTimeline, search: SearchWriter,
                            batch: list) -> None:
    """The batch's tags recounted, then their new totals ranked in search (a tag at 0 leaves it)."""
    totals = await recount_timeline(recounter, timeline, batch, tag_hours)
    await search.hashtags_best_effort(totals)


def register(app: faust.App, settings: Settings, wiring: Wiring, search: SearchWriter) -> None:
    topic = event_topic(app, settings, "posts")

    @app.agent(topic, name="hashtag_counts")
    async def hashtag_counts(stream) -> None:
        posts = (await until_ready("hashtag_counts", wiring.storage)).posts
        recounter, by_hashtag = posts.hashtag_post_counts, posts.by_hashtag
        apply = partial(recount_and_index, recounter, by_hashtag, search)  # called with each batch
        await each_batch(stream, "hashtag_counts", apply, size=BATCH_SIZE, within=BATCH_SECONDS, settings=settings)
