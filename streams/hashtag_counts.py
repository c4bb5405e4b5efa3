"""Post events -> `hashtags.post_count`, recounted from `posts_by_hashtag` (see streams/recount.py).

Each touched (tag, hour) bucket is counted with COUNT(*) into `hashtag_buckets.post_count`, then
the tag's buckets are summed into `hashtags`: absolute writes, so a replayed event changes nothing.
"""

from __future__ import annotations

import asyncio

import faust

from app.events import PostCreated, PostDeleted, topic_name
from app.ids import hour_bucket
from app.posts.repository import HASHTAG_POSTS as HASHTAG_TIMELINE
from app.settings import Settings
from app.timelines import BucketedTimeline
from streams.recount import HASHTAG_POSTS, BucketRecounter
from streams.resources import Resources
from streams.retry import until_done

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


async def recount(
    recounter: BucketRecounter, by_hashtag: BucketedTimeline, events: list[PostCreated | PostDeleted]
) -> None:
    # the API publishes PostDeleted before it removes the rows; removing them here too (idempotent)
    # makes sure the recount below cannot still see the post
    await asyncio.gather(*(
        by_hashtag.remove(tag, hour_bucket(e.post_id), e.post_id)
        for e in events if isinstance(e, PostDeleted) for tag in e.hashtags or ()
    ))
    buckets = {(tag, hour_bucket(e.post_id)) for e in events for tag in e.hashtags or ()}
    await asyncio.gather(*(recounter.recount_bucket(tag, bucket) for tag, bucket in buckets))
    await asyncio.gather(*(recounter.save_total(tag) for tag in {tag for tag, _ in buckets}))


def register(app: faust.App, settings: Settings, resources: Resources) -> None:
    topic = app.topic(topic_name(settings, "posts"))

    @app.agent(topic, name="hashtag_counts")
    async def hashtag_counts(stream) -> None:
        cass = await resources.cassandra()
        recounter = await BucketRecounter(cass, HASHTAG_POSTS).prepare()
        by_hashtag = await BucketedTimeline(cass, HASHTAG_TIMELINE).prepare()
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            await until_done("hashtag_counts", lambda: recount(recounter, by_hashtag, batch))  # noqa: B023
