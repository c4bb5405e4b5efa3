"""The story tray under load: GET /v1/stories/tray latency by tray size, and a story's push to 10,000 trays.

    .venv/bin/python -m loadtest.tray_benchmark [--sizes 25,100,500] [--readers 100] [--duration 6]
                                                [--levels 4,16] [--followers 10000] [--api-workers 2]

It uses its own keyspace (photos_bench_stories) and the feed benchmark's bench topics, so it never
touches dev or test data. It migrates the keyspace, then:

Seed (straight through the table owners, as the API and the tray worker write)
  For each tray size N: `--readers` readers (users + sessions), each following N + 50 authors
  (`following` rows) of whom N have live stories in the reader's `story_tray` partition (1-3 story
  ids each, a third of them already seen), 20 `affinity` rows per reader, and 2 followed
  celebrities with 3 live stories each (pulled at read time: `celebrities`, `followed_celebrities`,
  `stories`). So one tray read does what it does in production: the session, the tray partition,
  the followed celebrities, the affinity partition, the celebrities' live stories (shared per API
  process for 5 s), and the follow check of the authors the page shows (limit=100 here).
Load
  The real API (`python -m app.main --workers 2`) as a child process; one asyncio client with a
  fixed number of requests in flight (each of `--levels`), readers in turn, for `--duration` s per
  size and level after a warm-up pass. GET /healthz on the same API in the same run is the HTTP
  floor. p50/p99 latency and req/s; the verdict takes the lowest level (latency, not saturation:
  2 cores carry the client, both API processes, Cassandra and Kafka).
Push
  One story pushed to `--followers` followers' trays by the tray worker's own code
  (streams/story_tray.TrayWriter.push, feed_fanout_concurrency UPDATEs in flight): rows/s.
About a minute and a half.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import uvloop
from redis.asyncio import Redis

from app.client_security import redis_options
from app.feed.writer import for_each
from app.ids import IdGenerator
from app.settings import Settings
from app.storage.cassandra import CassandraSession, make_cluster
from app.storage.migrate import prepare_storage
from infra.procs import wait_http_ok
from loadtest.feed_benchmark import (
    BENCH_ENV,
    BenchProcess,
    CpuMeter,
    Load,
    child_processes,
    cpu_note,
    drive,
    start_api,
    verdict,
)
from loadtest.seed_feed import SEED_CONCURRENCY, Reader, Seeder
from loadtest.seeding.statements import SeedFollows, execute_each
from streams.story_tray import TrayWriter

KEYSPACE = "photos_bench_stories"
ENV = {**BENCH_ENV, "PHOTOS_CASSANDRA_KEYSPACE": KEYSPACE}
CELEBRITIES = 2
EXTRA_FOLLOWS = 50  # followed authors with no live story: the tray must skip them without reading them
AFFINITY_ROWS = 20
TRAY_P99_TARGET_MS = 50.0


class TrayWorld:
    """Writes what the API and the workers would have written for readers with full trays."""

    def __init__(self, settings: Settings, cass: CassandraSession, seeder: Seeder) -> None:
        self.settings = settings
        self.cass = cass
        self.seeder = seeder
        self.ids = IdGenerator()
        self.rng = random.Random(7)
        self.expires_at = datetime.now(UTC) + timedelta(hours=2)

    async def prepare(self) -> TrayWorld:
        storage = self.seeder.storage
        self.stories, self.users, self.follows = storage.stories, storage.users, storage.follows
        self.feed, self.affinity = storage.feed, storage.affinity
        self.edges = await SeedFollows(self.cass).prepare()  # `following` rows as plain upserts (no Paxos claim)
        self.celebrities = [self.ids.next_id() for _ in range(CELEBRITIES)]
        await self.seeder.add_users(self.celebrities, "celeb")
        for celebrity in self.celebrities:
            await self.feed.mark_celebrity(celebrity)
            for _ in range(3):
                await self.add_story(celebrity)
        return self

    async def add_story(self, author_id: int) -> int:
        story_id = self.ids.next_id()
        media = {"thumbnail": (f"s/{story_id}/thumbnail-bench.jpg", 108, 192)}
        await self.stories.insert(author_id, story_id, media, "", datetime.now(UTC), self.expires_at)
        return story_id

    async def readers(self, count: int, tray_size: int) -> list[Reader]:
        readers = await self.seeder.seed_readers(count, f"tray{tray_size}_")
        now = datetime.now(UTC)

        async def fill(reader: Reader) -> None:
            authors = [self.ids.next_id() for _ in range(tray_size + EXTRA_FOLLOWS)]
            follows = [self.edges.edge(reader.user_id, author, now, 0) for author in authors + self.celebrities]
            await execute_each(self.cass, follows, SEED_CONCURRENCY)
            await for_each(self.celebrities, lambda c: self.feed.add_followed_celebrity(reader.user_id, c),
                           SEED_CONCURRENCY)
            engaged = [(a, self.rng.randrange(1, 40)) for a in self.rng.sample(authors, AFFINITY_ROWS)]
            read_at = time.time_ns() // 1000  # as the affinity worker stamps its recount
            await for_each(engaged, lambda pair: self.affinity.save_interactions(reader.user_id, *pair, read_at),
                           SEED_CONCURRENCY)
            for author in authors[:tray_size]:
                story_ids = [self.ids.next_id() for _ in range(self.rng.randrange(1, 4))]
                for story_id in story_ids:
                    await self.stories.push([reader.user_id], author, f"a{author}", story_id, self.expires_at)
                if self.rng.random() < 1 / 3:
                    for story_id in story_ids:
                        await self.stories.mark_seen(reader.user_id, author, story_id, self.expires_at)

        await for_each(readers, fill, 8)
        return readers

    async def followers(self, author_id: int, count: int) -> list[int]:
        """`count` followers of the author in the followers mirror (what the push walks)."""
        followers = [self.ids.next_id() for _ in range(count)]
        now = datetime.now(UTC)
        await for_each(followers, lambda f: self.follows.write_mirror(author_id, 0, f, now), SEED_CONCURRENCY)
        return followers


async def push_phase(world: TrayWorld, settings: Settings, followers: int) -> tuple[float, int]:
    author = world.ids.next_id()
    await world.seeder.add_users([author], "pusher")
    readers = await world.followers(author, followers)
    feed = world.seeder.feed
    writer = TrayWriter(world.stories, world.follows, world.users, feed, settings.feed_fanout_concurrency)
    story_id = await world.add_story(author)
    started = time.perf_counter()
    pushed = await writer.push(author, story_id, world.expires_at)
    seconds = time.perf_counter() - started
    sample = world.rng.sample(readers, 50)
    rows = [await world.stories.tray_row(r, author) for r in sample]
    missing = sum(1 for row in rows if row is None or story_id not in (row.story_ids or ()))
    assert pushed == followers and missing == 0, (pushed, missing)
    return seconds, pushed


async def measure(settings: Settings, args: argparse.Namespace, api: BenchProcess) -> list[str]:
    began = time.perf_counter()
    sizes = [int(x) for x in args.sizes.split(",")]
    cluster = make_cluster(settings)
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        cass = CassandraSession(cluster.connect(KEYSPACE), settings.cassandra_max_in_flight)
        seeder = await Seeder(settings, cass, redis).prepare()
        world = await TrayWorld(settings, cass, seeder).prepare()
        seeded = time.perf_counter()
        worlds = {size: await world.readers(args.readers, size) for size in sizes}
        seed_s = time.perf_counter() - seeded
        levels = [int(x) for x in args.levels.split(",")]
        loads: dict[tuple[str, int], Load] = {}
        cpu = CpuMeter()
        cpu.add("api", api)

        async def measured(url: str, readers: list[Reader], level: int, parse: bool = True) -> Load:
            before = cpu.snapshot()
            load = await drive(http, url, readers, level, seconds=args.duration, parse=parse)
            load.cores = CpuMeter.cores(before, cpu.snapshot())
            return load

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            floor_readers = worlds[sizes[0]]
            await drive(http, f"{api.url}/healthz", floor_readers, levels[-1], count=500)  # warm-up
            for level in levels:
                loads["http floor", level] = await measured(f"{api.url}/healthz", floor_readers, level, parse=False)
            for size, readers in worlds.items():
                url = f"{api.url}/v1/stories/tray?limit=100"
                await drive(http, url, readers, levels[-1], count=len(readers), parse=True)  # warm-up
                for level in levels:
                    loads[f"tray {size}", level] = await measured(url, readers, level)
        push_s, pushed = await push_phase(world, settings, args.followers)
    finally:
        await redis.aclose()
        cluster.shutdown()
    lines = [
        f"Story tray benchmark ({os.cpu_count()} cores shared by every process; API {args.api_workers} worker "
        f"processes; keyspace {KEYSPACE})",
        f"seeded {args.readers} readers per tray size {sizes} (+{EXTRA_FOLLOWS} followed authors without stories, "
        f"{CELEBRITIES} celebrities pulled at read time) in {seed_s:.1f} s",
        "",
        f"{'phase':<12} {'in-flight':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'entries/page':>13} {'÷ floor':>8}  cores busy",
    ]
    for (name, level), load in loads.items():
        floor = loads["http floor", level]
        entries = "-" if not load.items else f"{max(load.items, key=load.items.get)}"
        lines.append(f"{name:<12} {level:>9} {load.req_s:>8,.0f} {load.percentile(0.5):>8.1f} "
                     f"{load.percentile(0.99):>8.1f} {load.errors:>7} {entries:>13} {load.req_s / floor.req_s:>8.3f}"
                     f"  {cpu_note(load.cores)}")
    lines += [
        "",
        f"push: one story into {pushed:,} followers' trays in {push_s:.2f} s ({pushed / push_s:,.0f} rows/s, "
        f"{settings.feed_fanout_concurrency} in flight)",
        "",
    ]
    for size in sizes:
        load = loads[f"tray {size}", levels[0]]
        p99 = load.percentile(0.99)
        lines.append(f"verdict: tray of {size} authors at {levels[0]} in flight: p50 {load.percentile(0.5):.1f} ms, "
                     f"p99 {p99:.1f} ms "
                     f"(target p99 < {TRAY_P99_TARGET_MS:.0f} ms), {load.errors} errors: "
                     f"{verdict(p99 < TRAY_P99_TARGET_MS and load.errors == 0)}")
    lines.append(f"total {time.perf_counter() - began:.0f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25,100,500", help="tray sizes (authors with live stories), comma-separated")
    parser.add_argument("--readers", type=int, default=100, help="readers per tray size")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    parser.add_argument("--levels", default="4,16", help="requests in flight, comma-separated")
    parser.add_argument("--followers", type=int, default=10_000, help="followers of the pushed story's author")
    parser.add_argument("--api-workers", type=int, default=2, help="API processes")
    args = parser.parse_args(argv)
    settings = Settings.from_env({**os.environ, **ENV})
    prepare_storage(settings)
    with child_processes() as procs:
        procs["api"] = start_api("api-tray", args.api_workers, {"PHOTOS_CASSANDRA_KEYSPACE": KEYSPACE})
        wait_http_ok(f"{procs['api'].url}/healthz", procs["api"])
        lines = uvloop.run(measure(settings, args, procs["api"]))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
