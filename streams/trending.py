"""Post events -> trending hashtags (docs/trending.md).

The agent records each post's (tag, 5-minute slot, author, post) in Redis sets, removing them on
PostDeleted; events of one tag arrive on many partitions, and the sets merge them. A leader timer
ranks both windows every `trending_refresh_s` and stores each ranking for the API to read.
"""

from __future__ import annotations

import dataclasses
import time

import faust

from app.events import PostCreated, PostDeleted
from app.ids import ID_EPOCH_MS, id_millis
from app.settings import Settings
from app.storage.trending import TrendingCells, TrendingRankings
from app.trending.scoring import WINDOWS, TrendingParams, rank, slot_of
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import timer

BATCH_SIZE = 500
BATCH_SECONDS = 0.5
MAX_RANKED = 100


def contributions(events: list) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, int, int, int]]]:
    added, removed = [], []
    for event in events:
        if isinstance(event, PostCreated | PostDeleted):
            slot = slot_of(ID_EPOCH_MS + id_millis(event.post_id))  # unix ms, like the timer's clock
            target = added if isinstance(event, PostCreated) else removed
            target.extend((tag, slot, event.actor_id, event.post_id) for tag in event.hashtags)
    return added, removed


def params_of(settings: Settings) -> TrendingParams:
    return TrendingParams(baseline_slots=settings.trending_baseline_slots, min_authors=settings.trending_min_authors)


async def refresh(cells: TrendingCells, rankings: TrendingRankings, params: TrendingParams, now_ms: int) -> None:
    now_slot = slot_of(now_ms)
    for window, slots in WINDOWS.items():
        state = await cells.load(now_slot, slots, params.baseline_slots)
        trends = rank(state, now_slot, slots, params, limit=MAX_RANKED)
        await rankings.save(window, [dataclasses.asdict(t) for t in trends])


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    topic = event_topic(app, settings, "posts")

    def stores() -> tuple[TrendingCells, TrendingRankings]:
        caches = wiring.caches()
        return caches.trending_cells, caches.trending_rankings

    @app.agent(topic, name="trending")
    async def trending(stream) -> None:
        cells, _ = stores()
        await each_batch(stream, "trending", lambda batch: cells.apply(*contributions(batch)),
                         size=BATCH_SIZE, within=BATCH_SECONDS, settings=settings)

    @timer(app, interval=settings.trending_refresh_s, on_leader=True, name="trending_refresh")
    async def trending_refresh() -> None:
        cells, rankings = stores()
        await refresh(cells, rankings, params_of(settings), int(time.time() * 1000))
