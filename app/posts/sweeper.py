"""The media sweeper: removes media that no post points at.

Every upload and every delete records its media keys in `media_sweep` before touching the
store and removes the record when it is done. Records that outlive the grace period belong to
requests that died midway: if their post exists the media is in use and the record is dropped,
otherwise the media is deleted. An upload record whose post exists is also finished: the post's
timeline entries are written again and PostCreated is published again (both idempotent), because
the upload may have died after writing the row and before announcing it (Cassandra went away
mid-write, or the API process was killed), and a post must never stay out of the counts, feeds
and hashtag pages its row belongs in. Run by the stream workers every few minutes and by
`photos-sweep-media`; safe to run anywhere, any number of times, concurrently.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC

from app.events import EventPublisher, PostCreated, new_event_fields
from app.media.store import MediaStore
from app.settings import Settings
from app.storage.media_sweep import SWEEP_LOOKBACK_HOURS, SWEEP_SHARDS, MediaSweepLog, SweepPlace, current_hour_bucket
from app.storage.posts import PostRepository
from app.stories.sweeper import StorySweeper, StorySweepReport
from app.wiring import Wiring

log = logging.getLogger(__name__)
SHARDS = range(SWEEP_SHARDS)


@dataclass
class SweepReport:
    checked: int = 0
    kept: int = 0
    finished: int = 0  # uploads whose post existed: timelines written and PostCreated published again
    removed_keys: int = 0


class MediaSweeper:
    def __init__(
        self, sweep: MediaSweepLog, posts: PostRepository, store: MediaStore, events: EventPublisher, grace_s: int
    ) -> None:
        self._sweep = sweep
        self._posts = posts
        self._store = store
        self._events = events
        self._grace_s = grace_s  # younger records may belong to requests still running

    async def run(self) -> SweepReport:
        """Settle the records older than the grace period.

        Each hour bucket is read until it has been read once whole after the grace period, then
        never again (`media_sweep_progress`); so a run reads about two hours of partitions, and a
        sweeper that was down catches up over at most the 7 days the records live."""
        report = SweepReport()
        cutoff = time.time() - self._grace_s
        newest = current_hour_bucket(cutoff)  # may still receive records younger than the cutoff
        settled = await self._sweep.settled_bucket()
        first = newest - 1 if settled is None else max(settled + 1, newest - SWEEP_LOOKBACK_HOURS + 1)
        for bucket in range(first, newest + 1):
            await asyncio.gather(*(self._settle_place(SweepPlace(bucket, s), cutoff, report) for s in SHARDS))
            if bucket < newest:  # a whole hour before the cutoff: nothing can be added to it any more
                await self._sweep.mark_settled(bucket)
        if report.removed_keys or report.finished:
            log.info("media sweep: %d records, %d kept (%d uploads finished), %d keys removed", report.checked,
                     report.kept, report.finished, report.removed_keys)
        return report

    async def _settle_place(self, place: SweepPlace, cutoff: float, report: SweepReport) -> None:
        for entry in await self._sweep.entries(place):
            if entry.written_at.replace(tzinfo=UTC).timestamp() <= cutoff:
                await self._settle(place, entry, report)

    async def _settle(self, place: SweepPlace, entry, report: SweepReport) -> None:
        report.checked += 1
        post = await self._posts.get(entry.post_id)
        if post is not None:
            report.kept += 1  # the post committed (or its delete failed): the media is in use
            if entry.reason == "upload":
                await self._finish_upload(post)
                report.finished += 1
        else:
            keys = list(entry.keys or ())
            await self._store.delete_many(keys)
            report.removed_keys += len(keys)
        await self._sweep.forget(place, entry.post_id)


    async def _finish_upload(self, post) -> None:
        """Everything an upload writes after its row, again: its timeline entries, then its event."""
        hashtags = list(post.hashtags or ())
        await self._posts.add_to_timelines(post.post_id, post.author_id, hashtags)
        event = PostCreated(
            **new_event_fields(post.author_id), post_id=post.post_id, hashtags=hashtags,
            mentions=list(post.mentions or ()),
        )
        await self._events.publish("posts", post.author_id, event)


async def sweep_once(settings: Settings) -> tuple[SweepReport, StorySweepReport]:
    """One run of both sweepers: media no post points at, and media of expired stories."""
    wiring = Wiring(settings)
    try:
        storage, events = await wiring.storage(), await wiring.events()
        await events.wait_connected(settings.kafka_send_timeout_s)
        sweeper = MediaSweeper(storage.media_sweep, storage.posts, wiring.media_store(), events,
                               settings.media_sweep_grace_s)
        stories = StorySweeper(storage.story_media, wiring.media_store())
        return await sweeper.run(), await stories.run()
    finally:
        await wiring.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-sweep-media", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report, stories = asyncio.run(sweep_once(Settings.from_env()))
    print(f"posts: checked {report.checked} records, kept {report.kept} (finished {report.finished} uploads), "
          f"removed {report.removed_keys} media keys")
    print(f"stories: {stories.expired} expired, removed {stories.removed_keys} media keys")
    return 0
