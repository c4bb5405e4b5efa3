"""Follow events -> the `followers` mirror repaired from the truth, exact follow counts, feed effects.

Counts are never incremented: for each batch the agent recounts what changed from the
edge tables and writes absolute values. A redelivered or duplicated event therefore
changes nothing, and a worker killed mid-batch simply recounts after restart. The batch's
effects on feeds (streams/feed_graph.py) and story trays (streams/story_tray.py) come last, from
the edges and counts as they are now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import faust

from app.events import FollowChanged
from app.settings import Settings
from app.storage.follows import FollowRepository
from app.storage.users import UserRepository
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.fanout import make_fanout
from streams.feed_graph import FeedGraph, FollowState
from streams.retry import until_ready
from streams.search_index import SearchWriter
from streams.story_tray import TrayWriter, make_tray_writer

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


class FollowGraphUpdater:
    def __init__(self, users: UserRepository, follows: FollowRepository, followers_per_bucket: int,
                 feeds: FeedGraph, search: SearchWriter | None = None, trays: TrayWriter | None = None) -> None:
        self.users = users
        self.follows = follows
        self.followers_per_bucket = followers_per_bucket
        self.feeds = feeds
        self.search = search
        self.trays = trays

    async def apply(self, events: list[FollowChanged]) -> None:
        latest = {(e.actor_id, e.followee_id): e for e in events}
        in_doubt = {(e.actor_id, e.followee_id) for e in events if e.recheck}  # their edges are read at SERIAL
        repaired = await self._repair_mirrors(latest, in_doubt)
        # every bucket the batch touched: an edge may have moved between buckets within the batch
        dirty_buckets = {(e.followee_id, b) for e, (b, _) in zip(latest.values(), repaired, strict=True)}
        dirty_buckets |= {(e.followee_id, e.bucket) for e in events}
        await asyncio.gather(*(self._recount_bucket(uid, b) for uid, b in dirty_buckets))
        followees = sorted({uid for uid, _ in dirty_buckets})
        totals, *_ = await asyncio.gather(
            asyncio.gather(*(self.follows.follower_counts.save_total(uid) for uid in followees)),
            *(self._recount_following(uid) for uid in {e.actor_id for e in latest.values()}),
        )
        states = [
            FollowState(e.actor_id, e.followee_id, following)
            for e, (_, following) in zip(latest.values(), repaired, strict=True)
        ]
        await self.feeds.apply(states, dict(zip(followees, totals, strict=True)))
        if self.trays is not None:  # after the mirror: a story pushed meanwhile was pushed to it or is copied here
            await self.trays.follows_settled(states)
        if self.search is not None:  # the totals just written rank the followees in search
            await self.search.users_best_effort(followees, dict(zip(followees, totals, strict=True)))

    async def _repair_mirrors(
        self, latest: dict[tuple[int, int], FollowChanged], in_doubt: set[tuple[int, int]]
    ) -> list[tuple[int, bool]]:
        """`_repair_mirror` for every pair, in the order of `latest`. The pairs in doubt are read at SERIAL, and
        serial reads of one follower's `following` partition are each a Paxos round that contends with the
        others: those go one after another per follower (followers in parallel), the rest all at once."""
        results: dict[tuple[int, int], tuple[int, bool]] = {}
        doubted_by_follower: dict[int, list[FollowChanged]] = defaultdict(list)
        for pair, event in latest.items():
            if pair in in_doubt:
                doubted_by_follower[event.actor_id].append(event)

        async def repair(pair: tuple[int, int], event: FollowChanged) -> None:
            results[pair] = await self._repair_mirror(event)

        async def repair_in_turn(events: list[FollowChanged]) -> None:
            for event in events:
                results[event.actor_id, event.followee_id] = await self._repair_mirror(event, serial=True)

        await asyncio.gather(
            *(repair(pair, event) for pair, event in latest.items() if pair not in in_doubt),
            *(repair_in_turn(events) for events in doubted_by_follower.values()),
        )
        return [results[pair] for pair in latest]

    async def _repair_mirror(self, event: FollowChanged, serial: bool = False) -> tuple[int, bool]:
        """Make the mirror row match the `following` edge as it is now (read at SERIAL when a request
        failed mid-transaction on it); returns the bucket touched and whether the edge exists."""
        follows = self.follows
        edge = await follows.edge(event.actor_id, event.followee_id, serial=serial)
        if edge is None:
            await follows.delete_mirror(event.followee_id, event.bucket, event.actor_id)
            return event.bucket, False
        await follows.write_mirror(event.followee_id, edge.follower_bucket, event.actor_id, edge.followed_at)
        return edge.follower_bucket, True

    async def _recount_bucket(self, user_id: int, bucket: int) -> None:
        count = await self.follows.follower_counts.recount_bucket(user_id, bucket)
        if count >= self.followers_per_bucket:
            current = await self.users.follower_bucket(user_id)
            if current is not None and current <= bucket:
                await self.users.open_follower_bucket(user_id, bucket + 1)
                log.info("user %d: followers bucket %d is full, opening %d", user_id, bucket, bucket + 1)

    async def _recount_following(self, user_id: int) -> None:
        read_at = _now_us()
        count = await self.follows.count_following(user_id)
        await self.users.save_following_count(user_id, count, read_at)


def _now_us() -> int:
    return time.time_ns() // 1000


def register(app: faust.App, settings: Settings, wiring: Wiring, search: SearchWriter) -> None:
    topic = event_topic(app, settings, "follows")

    @app.agent(topic, name="follow_graph")
    async def follow_graph(stream) -> None:
        async def make_updater() -> FollowGraphUpdater:
            storage = await wiring.storage()
            fanout = await make_fanout(settings, wiring)
            feeds = FeedGraph(fanout.writer, storage.follows, settings.feed_celebrity_followers)
            trays = await make_tray_writer(settings, wiring)
            return FollowGraphUpdater(storage.users, storage.follows, settings.followers_per_bucket, feeds, search,
                                      trays)

        updater = await until_ready("follow_graph", make_updater)
        await each_batch(stream, "follow_graph", updater.apply, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=FollowChanged)
