"""Post events -> `users.post_count`, recounted from `posts_by_user` (see app/storage/recount.py)."""

from __future__ import annotations

from collections.abc import Iterable

import faust

from app.events import PostCreated, PostDeleted, topic_name
from app.ids import month_bucket
from app.settings import Settings
from app.storage.posts import USER_POSTS as USER_POSTS_TIMELINE
from app.storage.recount import USER_POSTS, BucketRecounter, recount_timeline
from app.storage.timelines import BucketedTimeline
from streams.resources import Resources
from streams.retry import until_done, until_ready

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


def author_month(e: PostCreated | PostDeleted) -> Iterable[tuple]:
    """Where a post sits in `posts_by_user`: its author's month bucket."""
    return ((e.actor_id, month_bucket(e.post_id)),)


def register(app: faust.App, settings: Settings, resources: Resources) -> None:
    # two record types share the topic; faust finds each one's class by the name the record carries
    topic = app.topic(topic_name(settings, "posts"))

    @app.agent(topic, name="post_counts")
    async def post_counts(stream) -> None:
        recounter = await until_ready(
            "post_counts", lambda: resources.build(lambda cass: BucketRecounter(cass, USER_POSTS).prepare())
        )
        user_posts = await until_ready(
            "post_counts", lambda: resources.build(lambda cass: BucketedTimeline(cass, USER_POSTS_TIMELINE).prepare())
        )
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            await until_done("post_counts", lambda: recount_timeline(recounter, user_posts, batch, author_month))  # noqa: B023
