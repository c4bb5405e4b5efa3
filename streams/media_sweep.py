"""Runs the media sweepers on one worker of the group: posts' (app/posts/sweeper.py) every few minutes,
stories' (app/stories/sweeper.py) every story_sweep_interval_s."""

from __future__ import annotations

import logging

import faust

from app.posts.repository import MediaSweepLog, PostRepository
from app.posts.sweeper import MediaSweeper
from app.settings import Settings
from app.stories.repository import StoryMediaLog
from app.stories.sweeper import StorySweeper
from streams.resources import Resources

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 300.0


def register(app: faust.App, settings: Settings, resources: Resources) -> None:
    sweepers: list[MediaSweeper] = []  # built on the first tick, once the connections exist

    @app.timer(interval=SWEEP_INTERVAL_S, on_leader=True, name="media_sweep")
    async def media_sweep() -> None:
        if not sweepers:
            cass = await resources.cassandra()
            sweepers.append(
                MediaSweeper(
                    await MediaSweepLog(cass).prepare(), await PostRepository(cass).prepare(),
                    await resources.media_store(), settings.media_sweep_grace_s,
                )
            )
        try:
            await sweepers[0].run()
        except Exception:  # a failed sweep is retried at the next tick; the worker keeps running
            log.exception("media sweep failed")

    story_sweepers: list[StorySweeper] = []

    @app.timer(interval=settings.story_sweep_interval_s, on_leader=True, name="story_media_sweep")
    async def story_media_sweep() -> None:
        if not story_sweepers:
            cass = await resources.cassandra()
            story_sweepers.append(StorySweeper(await StoryMediaLog(cass).prepare(), await resources.media_store()))
        try:
            await story_sweepers[0].run()
        except Exception:  # a failed sweep is retried at the next tick; the worker keeps running
            log.exception("story media sweep failed")
