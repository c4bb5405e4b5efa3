"""Post events -> `users.post_count`, recounted from `posts_by_user` (see streams/recount.py)."""

from __future__ import annotations

import asyncio

import faust

from app.events import PostCreated, PostDeleted, topic_name
from app.ids import month_bucket
from app.settings import Settings
from streams.recount import USER_POSTS, BucketRecounter
from streams.resources import Resources

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


async def recount(recounter: BucketRecounter, events: list[PostCreated | PostDeleted]) -> None:
    buckets = {(e.actor_id, month_bucket(e.post_id)) for e in events}
    await asyncio.gather(*(recounter.recount_bucket(author, bucket) for author, bucket in buckets))
    await asyncio.gather(*(recounter.save_total(author) for author in {author for author, _ in buckets}))


def register(app: faust.App, settings: Settings, resources: Resources) -> None:
    # two record types share the topic; faust finds each one's class by the name the record carries
    topic = app.topic(topic_name(settings, "posts"))

    @app.agent(topic, name="post_counts")
    async def post_counts(stream) -> None:
        recounter = await BucketRecounter(await resources.cassandra(), USER_POSTS).prepare()
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            await recount(recounter, batch)
