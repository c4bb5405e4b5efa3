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

from app.events import FollowChanged, topic_name
from app.settings import Settings
from app.storage.cassandra import CassandraSession
from app.storage.follows import FollowRepository
from app.storage.recount import FOLLOWERS, BucketRecounter
from streams.fanout import make_fanout
from streams.feed_graph import FeedGraph, FollowState
from streams.resources import Resources
from streams.retry import until_done, until_ready
from streams.search_index import SearchWriter
from streams.story_tray import TrayWriter, make_tray_writer

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_SECONDS = 0.5


class FollowGraphStore:
    """The statements the follow agent needs, prepared once."""

    def __init__(self, cass: CassandraSession) -> None:
        self.cass = cass
        self.follows = FollowRepository(cass)  # the edge and mirror statements the API uses too
        self.followers = BucketRecounter(cass, FOLLOWERS)

    async def prepare(self) -> FollowGraphStore:
        p = self.cass.prepare
        await self.follows.prepare()
        await self.followers.prepare()
        self.count_following = await p("SELECT COUNT(*) AS n FROM following WHERE user_id = ?")
        self.current_bucket = await p("SELECT follower_bucket FROM users WHERE user_id = ?")
        self.open_bucket = await p("UPDATE users SET follower_bucket = ? WHERE user_id = ?")
        # stamped with the time the count was read: of two concurrent recounts the later one wins
        self.save_following_count = await p("UPDATE users USING TIMESTAMP ? SET following_count = ? WHERE user_id = ?")
        return self


class FollowGraphUpdater:
    def __init__(self, store: FollowGraphStore, followers_per_bucket: int, feeds: FeedGraph,
                 search: SearchWriter | None = None, trays: TrayWriter | None = None) -> None:
        self.store = store
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
            asyncio.gather(*(self.store.followers.save_total(uid) for uid in followees)),
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
        follows = self.store.follows
        edge = await follows.edge(event.actor_id, event.followee_id, serial=serial)
        if edge is None:
            await follows.delete_mirror(event.followee_id, event.bucket, event.actor_id)
            return event.bucket, False
        await follows.write_mirror(event.followee_id, edge.follower_bucket, event.actor_id, edge.followed_at)
        return edge.follower_bucket, True

    async def _recount_bucket(self, user_id: int, bucket: int) -> None:
        s = self.store
        count = await s.followers.recount_bucket(user_id, bucket)
        if count >= self.followers_per_bucket:
            row = await s.cass.one(s.current_bucket, (user_id,))
            if row is not None and (row.follower_bucket or 0) <= bucket:
                await s.cass.execute(s.open_bucket, (bucket + 1, user_id))
                log.info("user %d: followers bucket %d is full, opening %d", user_id, bucket, bucket + 1)

    async def _recount_following(self, user_id: int) -> None:
        s = self.store
        read_at = _now_us()
        count = (await s.cass.one(s.count_following, (user_id,))).n
        await s.cass.execute(s.save_following_count, (read_at, count, user_id))


def _now_us() -> int:
    return time.time_ns() // 1000


def register(app: faust.App, settings: Settings, resources: Resources, search: SearchWriter) -> None:
    topic = app.topic(topic_name(settings, "follows"), value_type=FollowChanged)

    @app.agent(topic, name="follow_graph")
    async def follow_graph(stream) -> None:
        async def make_updater() -> FollowGraphUpdater:
            store = await FollowGraphStore(await resources.cassandra()).prepare()
            fanout = await make_fanout(settings, resources)
            feeds = FeedGraph(fanout.writer, store.follows, settings.feed_celebrity_followers)
            trays = await make_tray_writer(settings, resources)
            return FollowGraphUpdater(store, settings.followers_per_bucket, feeds, search, trays)

        updater = await until_ready("follow_graph", make_updater)
        async for batch in stream.take(BATCH_SIZE, within=BATCH_SECONDS):
            await until_done("follow_graph", lambda: updater.apply(batch))  # noqa: B023 - awaited at once
