"""Runs the media sweepers on one worker of the group: posts' (app/posts/sweeper.py) every
media_sweep_interval_s, stories' (app/stories/sweeper.py) every story_sweep_interval_s."""

from __future__ import annotations

import faust

from app.posts.sweeper import MediaSweeper
from app.settings import Settings
from app.stories.sweeper import StorySweeper
from app.wiring import Wiring
from streams.metrics import RECONCILED
from streams.retry import timer


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    sweepers: list[MediaSweeper] = []  # built on the first tick, once the connections exist

    # a failed sweep (or a failed first preparation) is tried again at the next tick
    @timer(app, interval=settings.media_sweep_interval_s, on_leader=True, name="media_sweep")
    async def media_sweep() -> None:
        if not sweepers:
            storage = await wiring.storage()
            sweepers.append(
                MediaSweeper(storage.media_sweep, storage.posts, wiring.media_store(), await wiring.events(),
                             settings.media_sweep_grace_s)
            )
        report = await sweepers[0].run()
        RECONCILED.labels("uploads").inc(report.finished)

    story_sweepers: list[StorySweeper] = []

    @timer(app, interval=settings.story_sweep_interval_s, on_leader=True, name="story_media_sweep")
    async def story_media_sweep() -> None:
        if not story_sweepers:
            story_sweepers.append(StorySweeper((await wiring.storage()).story_media, wiring.media_store()))
        await story_sweepers[0].run()
