"""Runs the media sweepers on one worker of the group: posts' (app/posts/sweeper.py) every
media_sweep_interval_s, stories' (app/stories/sweeper.py) every story_sweep_interval_s."""

from __future__ import annotations

import faust

from app.posts.sweeper import MediaSweeper
from app.settings import Settings
from app.storage.media_sweep import MediaSweepLog
from app.storage.posts import PostRepository
from app.storage.stories import StoryMediaLog
from app.stories.sweeper import StorySweeper
from streams.resources import Resources
from streams.retry import timer


def register(app: faust.App, settings: Settings, resources: Resources) -> None:
    sweepers: list[MediaSweeper] = []  # built on the first tick, once the connections exist

    # a failed sweep (or a failed first preparation) is tried again at the next tick
    @timer(app, interval=settings.media_sweep_interval_s, on_leader=True, name="media_sweep")
    async def media_sweep() -> None:
        if not sweepers:
            cass = await resources.cassandra()
            sweepers.append(
                MediaSweeper(
                    await MediaSweepLog(cass).prepare(), await PostRepository(cass).prepare(),
                    await resources.media_store(), await resources.events(), settings.media_sweep_grace_s,
                )
            )
        await sweepers[0].run()

    story_sweepers: list[StorySweeper] = []

    @timer(app, interval=settings.story_sweep_interval_s, on_leader=True, name="story_media_sweep")
    async def story_media_sweep() -> None:
        if not story_sweepers:
            cass = await resources.cassandra()
            story_sweepers.append(StorySweeper(await StoryMediaLog(cass).prepare(), await resources.media_store()))
        await story_sweepers[0].run()
