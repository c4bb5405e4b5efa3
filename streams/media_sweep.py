"""Runs the media sweeper (app/posts/sweeper.py) every few minutes on one worker of the group."""

from __future__ import annotations

import logging

import faust

from app.posts.repository import MediaSweepLog, PostRepository
from app.posts.sweeper import MediaSweeper
from app.settings import Settings
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
