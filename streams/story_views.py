"""Story view events -> `story_viewers` (who viewed each story) and exact view counts.

Each StoryViewed names the viewers bucket its first view fixed (app/stories/service.py); a recheck (the
outbox's copy of a view whose own event never went out) names none, and the worker reads the viewer's
`story_views` row for it, counting nobody when the view was never claimed. For each
story in a batch the worker places the batch's viewers in the story's counted set
(app/storage/counted_set.py: conditional single-partition batches, each row IF NOT EXISTS), so a
repeated or replayed view finds its viewer in place and counts once. Every cell is written with
what is left of the story's life and expires with it. The absolute total goes to
`stories.view_count`. Events are keyed by story, so one worker owns a story's count.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime

import faust

from app.events import StoryViewed
from app.settings import Settings
from app.storage.counted_set import Placement
from app.storage.stories import StoryRef, StoryRepository, row_ttl_s
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
BATCH_SECONDS = 0.5
STORIES_IN_PARALLEL = 32

class ViewCounter:
    def __init__(self, stories: StoryRepository, views_per_bucket: int) -> None:
        self.stories = stories
        self.viewers = stories.viewers
        self._views_per_bucket = views_per_bucket
        self._slots = asyncio.Semaphore(STORIES_IN_PARALLEL)

    async def apply(self, events: list[StoryViewed]) -> None:
        by_story: dict[int, list[StoryViewed]] = defaultdict(list)
        for event in events:
            by_story[event.story_id].append(event)
        await asyncio.gather(*(self._settle(views) for views in by_story.values()))

    async def _settle(self, views: list[StoryViewed]) -> None:
        first = views[0]
        story = StoryRef(first.story_id, first.author_id, _at(first.expires_at_ms))
        ttl = row_ttl_s(story.expires_at)
        if ttl <= 0:
            return  # expired: everything of it is gone or going
        async with self._slots:
            placements = {e.actor_id: Placement(e.bucket, extra=(_at(e.viewed_at_ms),)) for e in views
                          if not e.recheck}
            rechecked = sorted({e.actor_id for e in views if e.recheck} - placements.keys())
            claims = await asyncio.gather(*(self.stories.view(story.story_id, v) for v in rechecked))
            for viewer_id, claimed in zip(rechecked, claims, strict=True):  # the claim's bucket, if it was made
                if claimed is not None:
                    placements[viewer_id] = Placement(claimed.bucket, extra=(claimed.viewed_at,))
            if not placements:
                return  # rechecks of views never claimed: nothing to count
            counts = await self.viewers.apply(story.story_id, placements, ttl_s=ttl)
            total, read_at = await self.viewers.total(story.story_id)
            await self.stories.save_view_count(story, total, read_at)
            full = [bucket for bucket, n in counts.items() if n >= self._views_per_bucket]
            if full:
                current = await self.stories.by_id(story.story_id)
                if current is not None and (current.view_bucket or 0) <= max(full):
                    await self.stories.open_view_bucket(story, max(full) + 1)
                    log.info("story %d: viewers bucket %d is full, opening the next", story.story_id, max(full))


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def make_counter(settings: Settings, wiring: Wiring) -> ViewCounter:
    return ViewCounter((await wiring.storage()).stories, settings.story_views_per_bucket)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    topic = event_topic(app, settings, "story_views")

    @app.agent(topic, name="story_views")
    async def story_views(stream) -> None:
        counter = await until_ready("story_views", lambda: make_counter(settings, wiring))
        await each_batch(stream, "story_views", counter.apply, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=StoryViewed)
