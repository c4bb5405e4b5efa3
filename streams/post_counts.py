"""Post events -> `users.post_count`, recounted from `posts_by_user` (see streams/recount.py)."""

from __future__ import annotations

import asyncio

import faust

from app.events import PostCreated, PostDeleted, topic_name
from app.ids import month_bucket
from app.posts.repository import USER_POSTS as USER_POSTS_TIMELINE
from app.settings import Settings
from app.timelines import BucketedTimeline
from streams.recount import USER_POSTS, BucketRecounter
from streams.resources import Resources
from streams.retry import until_done

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


async def recount(
    recounter: BucketRecounter, user_posts: BucketedTimeline, events: list[PostCreated | PostDeleted]
) -> None:
    # the API publishes PostDeleted before it removes the rows; removing the timeline row here too
    # (idempotent) makes sure the recount below cannot still see the post
    deleted = [e for e in events if isinstance(e, PostDeleted)]
    await asyncio.gather(*(user_posts.remove(e.actor_id, month_bucket(e.post_id), e.post_id) for e in deleted))
    buckets = {(e.actor_id, month_bucket(e.post_id)) for e in events}
    await asyncio.gather(*(recounter.recount_bucket(author, bucket) for author, bucket in buckets))
    await asyncio.gather(*(recounter.save_total(author) for author in {author for author, _ in buckets}))


def register(app: faust.App, settings: Settings, resources: Resources) -> None:
    # two record types share the topic; faust finds each one's class by the name the record carries
    topic = app.topic(topic_name(settings, "posts"))

    @app.agent(topic, name="post_counts")
    async def post_counts(stream) -> None:
        cass = await resources.cassandra()
        recounter = await BucketRecounter(cass, USER_POSTS).prepare()
        user_posts = await BucketedTimeline(cass, USER_POSTS_TIMELINE).prepare()
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            await until_done("post_counts", lambda: recount(recounter, user_posts, batch))  # noqa: B023
