"""Likes under load: sustained likes per second through HTTP with zero lost, the count lag, and
count writes per like, against a trivial endpoint measured in the same run.

    .venv/bin/python -m loadtest.like_benchmark [--duration 15] [--concurrency 64] [--users 30000]
                                                [--posts 1000] [--api-workers 2]

It uses its own keyspace (photos_bench_likes), topics (photos-bench-likes.*) and consumer group,
starts the real API (`python -m app.main --workers 2`) and the real stream worker
(`python -m streams`) as child processes (logs in .stack/bench-logs/), seeds users with session
tokens and posts straight through the repositories, measures, and stops the children at the end
(also on error or SIGTERM). About two minutes.

Phases, each a closed loop of --concurrency requests in flight for --duration seconds:
  http floor  GET /healthz: what HTTP alone costs these API processes and this load generator.
  hot post    PUT /v1/posts/{id}/like, every request on ONE post, each from a user who has not
              liked it: every 200 must end up counted.
  spread      the same, 10% on the hot post and 90% over --posts other posts.
After each like phase the benchmark polls posts.like_count (CQL) until every post's stored count
equals the likes acknowledged for it: the count lag is the time from the last acknowledged like
to that moment. Zero lost = stored counts, the bucket index sums and the likers rows all equal
the acknowledged likes. Count writes per like come from the like worker's own tally
(Redis hash <keyspace>:stats:like_worker), read before and after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import uvloop
from redis.asyncio import Redis

from app.cassandra import CassandraSession, make_cluster
from app.feed.writer import for_each
from app.likes.counts import LikeCounts
from app.migrate import prepare_storage
from app.settings import REPO_ROOT, Settings
from loadtest.feed_benchmark import (
    BENCH_ENV,
    LOG_DIR,
    BenchProcess,
    CpuMeter,
    Load,
    child_processes,
    cpu_note,
    drive,
    start_api,
)
from loadtest.seed_feed import Reader, Seeder
from tests.support.processes import wait_http_ok, wait_log_line

KEYSPACE = "photos_bench_likes"
LIKE_ENV = {
    "PHOTOS_CASSANDRA_KEYSPACE": KEYSPACE,
    "PHOTOS_KAFKA_TOPIC_PREFIX": "photos-bench-likes.",
    "PHOTOS_STREAMS_APP_ID": "photos-bench-likes-streams",
    "PHOTOS_LIKE_RATE_PER_USER": "10000000",  # the load comes from few clients; the limit is not measured
}
SEED_CONCURRENCY = 128
HOT_SHARE_SPREAD = 0.1
LAG_POLL_S = 0.02
LAG_TIMEOUT_S = 120.0


@dataclass
class LikeRun:
    name: str
    load: Load
    acked: Counter  # post id -> likes answered 200
    lag_s: float = 0.0
    worker: dict[str, int] = field(default_factory=dict)  # events, batches, count_writes during the phase
    lost: dict[str, int] = field(default_factory=dict)  # what was checked -> likes missing (0 = none)

    @property
    def likes(self) -> int:
        return sum(self.acked.values())


async def drive_likes(http: aiohttp.ClientSession, base: str, pairs: Iterator[tuple[Reader, int]],
                      concurrency: int, seconds: float) -> tuple[Load, Counter]:
    """PUT a like for each (user, post) pair in turn, `concurrency` in flight, for `seconds`."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    acked: Counter = Counter()
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        for user, post_id in pairs:
            if time.perf_counter() >= deadline:
                return
            sent = time.perf_counter()
            async with http.put(f"{base}/v1/posts/{post_id}/like", headers=user.auth) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append(time.perf_counter() - sent)
            if response.status == 200:
                acked[post_id] += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Load("", concurrency, time.perf_counter() - started, latencies, statuses, Counter(), Counter()), acked


def hot_pairs(users: list[Reader], hot: int) -> Iterator[tuple[Reader, int]]:
    return ((user, hot) for user in users)


def spread_pairs(users: list[Reader], hot: int, posts: list[int], liked: set[tuple[int, int]],
                 rng: random.Random) -> Iterator[tuple[Reader, int]]:
    """Each user likes the hot post with probability HOT_SHARE_SPREAD, else a random post; no (user, post)
    pair in `liked` (which grows) twice."""
    for user in itertools.cycle(users):
        post_id = hot if rng.random() < HOT_SHARE_SPREAD else rng.choice(posts)
        if (user.user_id, post_id) not in liked:
            liked.add((user.user_id, post_id))
            yield user, post_id


class CountProbe:
    """Reads what the like worker stored."""

    def __init__(self, cass: CassandraSession) -> None:
        self.cass = cass

    async def prepare(self) -> CountProbe:
        p = self.cass.prepare
        self._count = await p("SELECT like_count FROM posts WHERE post_id = ?")
        self._buckets = await p("SELECT like_count FROM post_like_buckets WHERE post_id = ?")
        self._likers = await p("SELECT COUNT(*) AS n FROM post_likers WHERE post_id = ? AND bucket = 0")
        return self

    async def stored(self, post_ids: list[int]) -> dict[int, int]:
        rows = await asyncio.gather(*(self.cass.one(self._count, (pid,)) for pid in post_ids))
        return {pid: (row.like_count or 0) if row else 0 for pid, row in zip(post_ids, rows, strict=True)}

    async def index_sum(self, post_id: int) -> int:
        return sum(row.like_count or 0 for row in await self.cass.rows(self._buckets, (post_id,)))

    async def likers(self, post_id: int) -> int:
        return (await self.cass.execute(self._likers, (post_id,), timeout=60)).current_rows[0].n


async def worker_tally(redis: Redis, key: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(key)).items()}


async def until_worker_idle(redis: Redis, key: str, quiet_s: float = 3.0, timeout_s: float = 300.0) -> float:
    """Wait until the like worker's tally has not moved for `quiet_s` (a backlog left by an earlier run
    or the warm-up is drained), so no phase pays for work that is not its own; returns the seconds waited."""
    started = time.perf_counter()
    last, since = await worker_tally(redis, key), time.perf_counter()
    while time.perf_counter() - since < quiet_s and time.perf_counter() - started < timeout_s:
        await asyncio.sleep(0.5)
        now = await worker_tally(redis, key)
        if now != last:
            last, since = now, time.perf_counter()
    return time.perf_counter() - started


async def settle(probe: CountProbe, run: LikeRun, baseline: dict[int, int], finished: float) -> None:
    """Wait until every post's stored count equals what it held before plus the likes acknowledged."""
    expected = {pid: baseline.get(pid, 0) + n for pid, n in run.acked.items()}
    post_ids = list(expected)
    deadline = time.perf_counter() + LAG_TIMEOUT_S
    while True:
        stored = await probe.stored(post_ids)
        if stored == expected or time.perf_counter() > deadline:
            break
        await asyncio.sleep(LAG_POLL_S)
    run.lag_s = time.perf_counter() - finished
    run.lost["posts.like_count"] = sum(max(0, expected[pid] - stored[pid]) for pid in post_ids)
    over = sum(max(0, stored[pid] - expected[pid]) for pid in post_ids)
    if over:
        run.lost["counted twice"] = over


async def like_phase(name: str, http, base: str, pairs, args, probe: CountProbe, redis: Redis, stats_key: str,
                     cpu: CpuMeter, baseline: dict[int, int]) -> LikeRun:
    before_tally, before_cpu = await worker_tally(redis, stats_key), cpu.snapshot()
    load, acked = await drive_likes(http, base, pairs, args.concurrency, args.duration)
    finished = time.perf_counter()
    load.cores = CpuMeter.cores(before_cpu, cpu.snapshot())
    load.mode = name
    run = LikeRun(name, load, acked)
    await settle(probe, run, baseline, finished)
    await until_worker_idle(redis, stats_key, quiet_s=1.5)  # the last batch is tallied after its counts land
    after = await worker_tally(redis, stats_key)
    run.worker = {k: after.get(k, 0) - before_tally.get(k, 0) for k in ("events", "batches", "count_writes")}
    return run


def report(floor: Load, runs: list[LikeRun], hot: int) -> list[str]:
    lines = [
        f"{'phase':<11} {'in-flight':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'likes':>7} {'÷ floor':>8} {'lag s':>6} {'writes/like':>11} {'likes/write':>11}  cores busy",
        f"{'http floor':<11} {floor.concurrency:>9} {floor.req_s:>8,.0f} {floor.percentile(0.5):>7.1f} "
        f"{floor.percentile(0.99):>7.1f} {floor.errors:>6} {'-':>7} {'1.000':>8} {'-':>6} {'-':>11} {'-':>11}  "
        f"{cpu_note(floor.cores)}",
    ]
    for run in runs:
        writes = run.worker.get("count_writes", 0)
        lines.append(
            f"{run.name:<11} {run.load.concurrency:>9} {run.load.req_s:>8,.0f} {run.load.percentile(0.5):>7.1f} "
            f"{run.load.percentile(0.99):>7.1f} {run.load.errors:>6} {run.likes:>7,} "
            f"{run.load.req_s / floor.req_s:>8.3f} {run.lag_s:>6.2f} {writes / max(run.likes, 1):>11.4f} "
            f"{run.likes / max(writes, 1):>11,.0f}  {cpu_note(run.load.cores)}"
        )
    lines.append("")
    for run in runs:
        w = run.worker
        lines.append(
            f"{run.name}: worker took {w.get('events', 0):,} events in {w.get('batches', 0):,} batches "
            f"({w.get('events', 0) / max(w.get('batches', 1), 1):,.0f} per batch), wrote {w.get('count_writes', 0):,} "
            f"counts for {len(run.acked):,} posts; statuses {dict(run.load.statuses)}"
        )
    lines.append("")
    for run in runs:
        lost = sum(v for k, v in run.lost.items() if k != "counted twice")
        checks = ", ".join(f"{k} {v}" for k, v in run.lost.items())
        lines.append(f"verdict: {run.name}: zero lost ({run.likes:,} acknowledged; missing per check: {checks}): "
                     f"{'PASS' if lost == 0 and 'counted twice' not in run.lost else 'FAIL'}")
    hot_run = runs[0]
    per_write = hot_run.likes / max(hot_run.worker.get("count_writes", 0), 1)
    lines.append(
        f"verdict: hot post: {per_write:,.0f} likes per count write (seed: ~1000); one count write per post per "
        f"stream batch, so the factor is likes/s x batch time: {hot_run.load.req_s:,.0f}/s here"
    )
    for run in runs:
        lines.append(f"verdict: {run.name}: likes/s = {run.load.req_s / floor.req_s:.3f} x the http floor "
                     f"({run.load.req_s:,.0f} vs {floor.req_s:,.0f} req/s); count lag {run.lag_s:.2f} s")
    return lines


async def measure(settings: Settings, args: argparse.Namespace, procs: dict[str, BenchProcess]) -> list[str]:
    began = time.perf_counter()
    cpu = CpuMeter()
    for name, process in procs.items():
        cpu.add(name, process)
    cluster = make_cluster(settings)
    redis = Redis.from_url(settings.redis_url)
    try:
        cass = CassandraSession(cluster.connect(KEYSPACE), settings.cassandra_max_in_flight)
        seeder = await Seeder(settings, cass, redis).prepare()
        probe = await CountProbe(cass).prepare()
        seed_started = time.perf_counter()
        user_ids = [seeder.ids.next_id() for _ in range(args.users)]
        await seeder.add_users(user_ids, "l")
        tokens = await for_each_result(user_ids, seeder.sessions.create)
        users = [Reader(uid, token) for uid, token in zip(user_ids, tokens, strict=True)]
        author = seeder.ids.next_id()
        await seeder.add_users([author], "author")
        post_ids = [seeder.ids.next_id() for _ in range(args.posts + 1)]
        await for_each(post_ids, lambda pid: seeder.add_post(pid, author), SEED_CONCURRENCY)
        hot, others = post_ids[0], post_ids[1:]
        seed_s = time.perf_counter() - seed_started
        stats_key = LikeCounts.for_settings(settings, redis).stats_key
        base = procs["api"].url
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            warm = users[-200:]  # a short unmeasured warm-up on its own post
            await drive_likes(http, base, hot_pairs(warm, others[-1]), args.concurrency, 3.0)
            drained_s = await until_worker_idle(redis, stats_key)
            before = cpu.snapshot()
            floor = await drive(http, f"{base}/healthz", users[:100], args.concurrency, seconds=args.duration)
            floor.cores = CpuMeter.cores(before, cpu.snapshot())
            fresh = users[:-200]
            hot_run = await like_phase("hot post", http, base, hot_pairs(fresh, hot), args, probe, redis, stats_key,
                                       cpu, {})
            baseline = await probe.stored(post_ids)
            liked = {(user.user_id, hot) for user in fresh}  # may have liked it in the hot phase
            spread = spread_pairs(fresh, hot, others[:-1], liked, random.Random(3))
            spread_run = await like_phase("spread", http, base, spread, args, probe, redis, stats_key, cpu,
                                          baseline)
        total_hot = hot_run.likes + spread_run.acked.get(hot, 0)
        hot_run.lost["post_like_buckets sum"] = total_hot - await probe.index_sum(hot)
        hot_run.lost["post_likers rows"] = total_hot - await probe.likers(hot)
    finally:
        await redis.aclose()
        cluster.shutdown()
    return [
        f"Likes benchmark ({os.cpu_count()} cores shared by every process; API {args.api_workers} worker processes; "
        f"keyspace {KEYSPACE})",
        f"seeded {args.users:,} users with tokens and {args.posts + 1:,} posts in {seed_s:.1f} s; "
        f"{args.concurrency} requests in flight, {args.duration:.0f} s per phase; the worker was idle "
        f"{drained_s:.0f} s after the warm-up",
        "",
        *report(floor, [hot_run, spread_run], hot),
        f"total {time.perf_counter() - began:.0f} s (child logs in {LOG_DIR.relative_to(REPO_ROOT)}/)",
    ]


async def for_each_result(items: list, make) -> list:
    """`make(item)` for every item, SEED_CONCURRENCY at a time, results in order."""
    slots = asyncio.Semaphore(SEED_CONCURRENCY)

    async def one(item):
        async with slots:
            return await make(item)

    return await asyncio.gather(*(one(item) for item in items))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--users", type=int, default=30_000, help="users (each likes the hot post at most once)")
    parser.add_argument("--posts", type=int, default=1000, help="posts besides the hot one")
    parser.add_argument("--api-workers", type=int, default=2, help="API processes")
    args = parser.parse_args(argv)
    settings = Settings.from_env({**os.environ, **BENCH_ENV, **LIKE_ENV})
    prepare_storage(settings)
    with child_processes() as procs:
        procs["api"] = start_api("api-likes", args.api_workers, LIKE_ENV)
        procs["streams"] = BenchProcess("streams-likes", ["-m", "streams"], {**BENCH_ENV, **LIKE_ENV})
        wait_http_ok(f"{procs['api'].url}/healthz", procs["api"])
        wait_log_line(procs["streams"], "Ready")
        lines = uvloop.run(measure(settings, args, procs))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
