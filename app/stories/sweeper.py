"""The story sweeper: removes the media of expired stories.

A story's rows expire by TTL; its media in the store does not. Every story's media keys are
recorded in `story_media_expiry` under the minute it expires, before the media is stored, so
the record exists whether the upload finished or died midway. The sweeper reads the minutes up
to now, deletes the media of every record whose story has expired, then the record. A minute
wholly in the past is read until it has been settled once, then never again. Run by the stream
workers every story_sweep_interval_s and by `photos-sweep-media`; safe to run anywhere, any
number of times, concurrently (deleting a missing key is not an error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC

from app.media.store import MediaStore
from app.storage.stories import EXPIRY_SHARDS, ExpiryPlace, StoryMediaLog

log = logging.getLogger(__name__)

FIRST_RUN_LOOKBACK_MIN = 60  # the first run ever starts this far back (the workers sweep from their start)
MAX_CATCH_UP_MIN = 7 * 24 * 60  # records outlive their story by 7 days: a sweeper down longer misses some
MINUTES_PER_RUN = 240  # a sweeper that was down catches up over several runs, each of bounded length


@dataclass
class StorySweepReport:
    expired: int = 0
    removed_keys: int = 0


class StorySweeper:
    def __init__(self, media_log: StoryMediaLog, store: MediaStore) -> None:
        self._log = media_log
        self._store = store

    async def run(self, now: float | None = None) -> StorySweepReport:
        report = StorySweepReport()
        now = time.time() if now is None else now
        current = int(now // 60)
        settled = await self._log.settled_minute()
        if settled is None:
            first = current - FIRST_RUN_LOOKBACK_MIN
        else:
            first = max(settled + 1, current - MAX_CATCH_UP_MIN)
        last = min(current, first + MINUTES_PER_RUN - 1)
        for minute in range(first, last + 1):
            await asyncio.gather(*(self._sweep(ExpiryPlace(minute, s), now, report) for s in range(EXPIRY_SHARDS)))
            if minute < current:  # wholly in the past: every record in it has expired and is gone now
                await self._log.mark_settled(minute)
        if report.expired:
            log.info("story sweep: %d expired stories, %d media keys removed", report.expired, report.removed_keys)
        return report

    async def _sweep(self, place: ExpiryPlace, now: float, report: StorySweepReport) -> None:
        for entry in await self._log.entries(place):
            expires_at = entry.expires_at.replace(tzinfo=UTC) if entry.expires_at.tzinfo is None else entry.expires_at
            if expires_at.timestamp() > now:
                continue  # still live: a later run takes it
            keys = list(entry.keys or ())
            await self._store.delete_many(keys)
            await self._log.forget(place, entry.story_id)
            report.expired += 1
            report.removed_keys += len(keys)
