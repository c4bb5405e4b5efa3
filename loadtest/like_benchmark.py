"""Likes under load, each figure against a trivial endpoint measured in the same run.

Sustained likes per second through HTTP with zero lost, the count lag, and count writes per like.

    .venv/bin/python -m loadtest.like_benchmark [--duration 20] [--concurrency 64] [--users 40000]
                                                [--posts 1000] [--api-workers 2]
                                                [--commitlog-modes periodic,group,batch] [--mode-duration 10]
                                                [--modes-only]

It uses its own keyspace (photos_bench_likes), topics (photos-bench-likes.*) and consumer group,
starts the real API (`python -m app.main --workers 2`) and the real stream worker
(`python -m streams`) as child processes (logs in .stack/bench-logs/), seeds users with session
tokens and posts straight through the repositories, measures, and stops the children at the end
(also on error, Ctrl-C or SIGTERM). About two minutes.

Phases, each a closed loop of --concurrency requests in flight for --duration seconds, after a
short unmeasured warm-up and once the worker is idle:
  http floor  GET /healthz: what HTTP alone costs these API processes and this load generator.
  hot post    PUT /v1/posts/{id}/like, every request on ONE post, each from a user who has not
              liked it: every 200 must end up counted.
  spread      the same, 10% on the hot post and 90% over --posts other posts; no (user, post)
              pair twice in the run.
Any answer but 200 (and any client error) is counted and shown; only 200s are expected to count.
After each like phase the benchmark polls posts.like_count (Cassandra, every 50 ms: one post still
short at a time, then a sweep of the rest, so polling adds next to no load) until every post's
stored count has reached what it held before plus the likes acknowledged for it. The count lag
is the time from the last acknowledged like to that moment. Zero lost = for every post, the
stored count, the sum of its post_like_buckets and its post_likers rows all equal that figure.
Count writes per like come from the like worker's own tally (Redis hash
<keyspace>:stats:like_worker), read before and after each phase, as do the edges the worker wrote
itself because an event was ahead of its request's write; Cassandra requests per like
per table from Cassandra's own coordinator counters (system_views), over the phase and its settling.

Commit log modes: then, for each of --commitlog-modes, a Cassandra node of its own in that mode
(loadtest/commitlog_modes.py), its own topics, API and worker, a smaller seed (--mode-users,
--mode-posts) and the spread phase for --mode-duration seconds, with the same zero-lost check.
Its table compares likes/s and latency with the first mode's (periodic, Cassandra's default, which
acknowledges before the commit log is on disk); docs/reliability.md says why the stack uses batch.
About a minute per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
import uvloop
from redis.asyncio import Redis

from app.client_security import redis_options
from app.feed.writer import for_each
from app.settings import REPO_ROOT, Settings
from app.storage.cassandra import CassandraSession, make_cluster
from app.storage.migrate import prepare_storage
from app.storage.system import coordinator_counts
from app.wiring import Caches, Storage
from infra.procs import wait_http_ok, wait_log_line
from loadtest.commitlog_modes import CommitLogMode, ModeRun, parse_modes, run_per_mode
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
    verdict,
)
from loadtest.seed_feed import SEED_CONCURRENCY, Reader, Seeder
from streams.like_counts import BATCH_SECONDS, BATCH_SIZE

KEYSPACE = "photos_bench_likes"
LIKE_ENV = {
    "PHOTOS_CASSANDRA_KEYSPACE": KEYSPACE,
    "PHOTOS_KAFKA_TOPIC_PREFIX": "photos-bench-likes.",
    "PHOTOS_STREAMS_APP_ID": "photos-bench-likes-streams",
    "PHOTOS_LIKE_RATE_PER_USER": "10000000",  # the load comes from few clients; the limit is not measured
}
HOT_SHARE_SPREAD = 0.1
WARMUP_USERS = 200
LAG_POLL_S = 0.05
LAG_TIMEOUT_S = 180.0
SEED_LIKES = 1000  # likes per count write the seed promised for a hot post


@dataclass
class LikeRun:
    name: str
    load: Load
    acked: Counter  # post id -> likes answered 200
    started: float  # perf_counter when the load began
    last_ack: float  # perf_counter of the last 200
    ran_out: bool  # every (user, post) pair was used before the time was up
    watched_acks: list[float] = field(default_factory=list)  # perf_counter of each 200 on the watched post
    behind: list[tuple[float, float]] = field(default_factory=list)  # (s into the load, how old its stored count)
    lag_s: float = 0.0
    settle_cores: dict[str, float] = field(default_factory=dict)  # from the end of the load to exact counts
    worker: dict[str, int] = field(default_factory=dict)  # events, batches, count_writes during the phase
    missing: dict[str, int] = field(default_factory=dict)  # check -> acknowledged likes it lacks (0 = none)
    extra: dict[str, int] = field(default_factory=dict)  # check -> counted beyond the acknowledged
    requests: dict[str, Counter] = field(default_factory=dict)  # "read"/"write" -> table -> requests per like

    @property
    def likes(self) -> int:
        return sum(self.acked.values())

    @property
    def settled_per_s(self) -> float:
        """Likes the worker turned into exact counts per second, from the start of the load to the last count
        (its capacity when it fell behind; below it when it kept pace, by the lag a batch always adds)."""
        return self.likes / (self.last_ack + self.lag_s - self.started)

    def note_stored(self, at: float, counted: int) -> None:
        """The watched post's stored count held `counted` of this phase's likes at `at`: how old is it?"""
        if not self.watched_acks:
            return  # no likes on it in this phase: nothing to trail
        if counted <= 0:
            since = self.started
        else:  # a like can be counted before its 200 reaches this client: never less than 0
            since = min(at, self.watched_acks[min(counted, len(self.watched_acks)) - 1])
        self.behind.append((at - self.started, at - since))

    @property
    def falling_behind(self) -> float | None:
        """Seconds the watched post's count fell further behind per second of load: the least-squares slope
        after the first second, as it moves in steps of one batch (0 when the worker keeps pace; None when
        the load was too short to tell)."""
        if len(self.behind) < 4:
            return None
        at, behind = zip(*self.behind[1:], strict=True)
        return statistics.linear_regression(at, behind).slope

    def pace_note(self) -> str:
        n = len(self.behind)
        shown = ", ".join(f"{b:.1f} s at {t:.0f} s" for t, b in
                          (self.behind[i] for i in sorted({n // 3 - 1, 2 * n // 3 - 1, n - 1}) if i >= 0))
        slope = self.falling_behind
        if slope is None:
            return f"the hot post's stored count trailed its likes by {shown or '-'} (too short to tell a trend)"
        trend = (f"the worker falls behind: it settled {self.settled_per_s:,.0f} likes/s, {self.load.req_s:,.0f}/s "
                 "came in" if slope > 0.05 else "the worker keeps pace")
        return f"the hot post's stored count trailed its likes by {shown}: {slope:+.2f} s per s of load ({trend})"

    @property
    def lost(self) -> bool:
        return any(self.missing.values()) or sum(self.extra.values()) > self.load.errors


async def drive_likes(http: aiohttp.ClientSession, base: str, pairs: Iterator[tuple[Reader, int]],
                      concurrency: int, seconds: float, watch: int | None = None) -> LikeRun:
    """PUT a like for each (user, post) pair in turn, `concurrency` in flight, for `seconds`; the times of
    the 200s on post `watch` are kept."""
    run = LikeRun("", Load("", concurrency, 0.0, [], Counter(), Counter(), Counter()), Counter(),
                  time.perf_counter(), 0.0, False)
    deadline = run.started + seconds

    async def client() -> None:
        for user, post_id in pairs:
            if time.perf_counter() >= deadline:
                return
            sent = time.perf_counter()
            try:
                async with http.put(f"{base}/v1/posts/{post_id}/like", headers=user.auth) as response:
                    await response.read()
                    status: int | str = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:  # reported with the statuses, never dropped
                status = type(exc).__name__
            answered = time.perf_counter()
            run.load.latencies.append(answered - sent)
            run.load.statuses[status] += 1
            if status == 200:
                run.acked[post_id] += 1
                run.last_ack = answered
                if post_id == watch:
                    run.watched_acks.append(answered)
        run.ran_out = True

    await asyncio.gather(*(client() for _ in range(concurrency)))
    run.load.seconds = time.perf_counter() - run.started
    return run


def fresh_pairs(users: list[Reader], choose: Callable[[], int], liked: set[tuple[int, int]]
                ) -> Iterator[tuple[Reader, int]]:
    """The users in turn, round after round, each with the post `choose()` picks, skipping the pairs in
    `liked` (which grows), so no (user, post) pair is liked twice in a run; ends after a round with none."""
    while True:
        before = len(liked)
        for user in users:
            post_id = choose()
            if (user.user_id, post_id) not in liked:
                liked.add((user.user_id, post_id))
                yield user, post_id
        if len(liked) == before:
            return


class CountProbe:
    """Reads what the like worker stored, through the owners of `posts` and the likers' counted set."""

    def __init__(self, storage: Storage) -> None:
        self.posts = storage.posts
        self.likers = storage.likes.likers

    async def stored(self, post_ids: list[int]) -> dict[int, int]:
        rows = await asyncio.gather(*(self.posts.like_state(pid) for pid in post_ids))
        return {pid: (row.like_count or 0) if row else 0 for pid, row in zip(post_ids, rows, strict=True)}

    async def bucket_counts(self, post_id: int) -> dict[int, int]:
        return await self.likers.buckets(post_id)

    async def likers_rows(self, post_id: int, buckets: list[int]) -> int:
        return sum([await self.likers.count_members(post_id, b) for b in buckets])

    async def until_counted(self, expected: dict[int, int], timeout_s: float = LAG_TIMEOUT_S) -> float:
        """Poll until every post's stored count has reached `expected`: the first post still short until
        it has, then a sweep of all still short. Returns the perf_counter at which all were seen there
        (at the timeout if never: the checks then report what is missing)."""
        pending = dict(expected)
        deadline = time.perf_counter() + timeout_s
        while pending and time.perf_counter() < deadline:
            first = next(iter(pending))
            if (await self.stored([first]))[first] >= pending[first]:
                stored = await self.stored(list(pending))
                pending = {pid: n for pid, n in pending.items() if stored[pid] < n}
                if not pending:
                    break
            await asyncio.sleep(LAG_POLL_S)
        return time.perf_counter()

    async def check(self, expected: dict[int, int]) -> tuple[dict[str, int], dict[str, int]]:
        """For every post, its stored count, bucket index sum and likers rows against `expected`:
        (likes missing per check, likes counted beyond it per check)."""
        found: dict[str, dict[int, int]] = {"posts.like_count": await self.stored(list(expected)),
                                            "post_like_buckets sum": {}, "post_likers rows": {}}

        async def one(pid: int) -> None:
            buckets = await self.bucket_counts(pid)
            found["post_like_buckets sum"][pid] = sum(buckets.values())
            found["post_likers rows"][pid] = await self.likers_rows(pid, sorted(buckets))

        await for_each(list(expected), one, SEED_CONCURRENCY)
        missing = {name: sum(max(0, n - got[pid]) for pid, n in expected.items()) for name, got in found.items()}
        extra = {name: sum(max(0, got[pid] - n) for pid, n in expected.items()) for name, got in found.items()}
        return missing, extra


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


@dataclass
class Bench:
    """What every like phase needs: the API, the probes, the worker's tally and the CPU meter."""

    http: aiohttp.ClientSession
    base: str
    probe: CountProbe
    cass: CassandraSession
    redis: Redis
    stats_key: str
    cpu: CpuMeter
    concurrency: int
    seconds: float

    async def like_phase(self, name: str, pairs: Iterator[tuple[Reader, int]], posts: list[int],
                         watch: int) -> LikeRun:
        """Drive the likes (watching how far post `watch`'s stored count trails them), wait for exact
        counts, then check every post the phase liked."""
        counts_before = await self.probe.stored(posts)
        tally_before = await worker_tally(self.redis, self.stats_key)
        requests_before = await coordinator_counts(self.cass, KEYSPACE)
        cpu_before = self.cpu.snapshot()
        samples: list[tuple[float, int]] = []
        sampler = asyncio.create_task(self.sample(watch, samples))
        run = await drive_likes(self.http, self.base, pairs, self.concurrency, self.seconds, watch)
        sampler.cancel()
        run.name = run.load.mode = name
        for at, stored in samples:
            run.note_stored(at, stored - counts_before[watch])
        loaded = self.cpu.snapshot()
        run.load.cores = CpuMeter.cores(cpu_before, loaded)
        expected = {pid: counts_before.get(pid, 0) + n for pid, n in run.acked.items()}
        run.lag_s = await self.probe.until_counted(expected) - run.last_ack
        run.settle_cores = CpuMeter.cores(loaded, self.cpu.snapshot())
        await until_worker_idle(self.redis, self.stats_key, quiet_s=1.5)  # the last batch is tallied after its counts
        tally = await worker_tally(self.redis, self.stats_key)
        requests = await coordinator_counts(self.cass, KEYSPACE)
        run.worker = {k: tally.get(k, 0) - tally_before.get(k, 0)
                      for k in ("events", "batches", "count_writes", "edges_written")}
        run.requests = {kind: Counter({table: n / max(run.likes, 1) for table, n in
                                       (requests[kind] - requests_before[kind]).items()}) for kind in requests}
        run.missing, run.extra = await self.probe.check(expected)
        return run

    async def sample(self, post_id: int, samples: list[tuple[float, int]]) -> None:
        """(perf_counter, stored count) of one post every second, until cancelled."""
        while True:
            await asyncio.sleep(1.0)
            at = time.perf_counter()
            samples.append((at, (await self.probe.stored([post_id]))[post_id]))


def report_table(floor: Load, runs: list[LikeRun]) -> list[str]:
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
    lines.append("req/s of a like phase = likes answered 200 per second; errors = every other answer")
    return lines


def report_details(runs: list[LikeRun]) -> list[str]:
    lines = []
    for run in runs:
        w = run.worker
        events, batches = w.get("events", 0), max(w.get("batches", 0), 1)
        lines += [
            f"{run.name}: statuses {dict(run.load.statuses)}, {len(run.watched_acks):,} of the 200s on the hot post"
            + ("; ran out of fresh (user, post) pairs before the time was up: raise --users" if run.ran_out else ""),
            f"  worker: {events:,} events in {w.get('batches', 0):,} batches ({events / batches:,.0f} per batch), "
            f"{w.get('count_writes', 0):,} count writes for {len(run.acked):,} posts, "
            f"{w.get('edges_written', 0):,} edges written by the worker (an event ahead of its request's write)",
            f"  during the load {run.pace_note()}",
            f"  cores busy while the counts caught up ({run.lag_s:.1f} s): {cpu_note(run.settle_cores)}",
            f"  Cassandra requests per like (coordinator counts; API, workers and polling): reads "
            f"{per_table(run.requests['read'])}; writes {per_table(run.requests['write'])}",
        ]
    lines.append("  (a conditional write, such as a likers batch, counts as one read here, the read of its Paxos "
                 "round, and not as a write)")
    return lines


def per_table(counts: Counter) -> str:
    shown = [f"{table} {n:.2f}" for table, n in counts.most_common() if n >= 0.01]
    return f"{sum(counts.values()):.1f} ({', '.join(shown)})" if shown else "none"


def report_verdicts(floor: Load, runs: list[LikeRun]) -> list[str]:
    lines = []
    for run in runs:
        checks = ", ".join(f"{name} {n}" for name, n in run.missing.items())
        extra = sum(run.extra.values())
        lines.append(f"verdict: {run.name}: zero lost ({run.likes:,} acknowledged over {len(run.acked):,} posts; "
                     f"missing per check: {checks}" + (f"; {extra} counted beyond" if extra else "")
                     + f"): {verdict(not run.lost)}")
    for run in runs:
        lines.append(f"verdict: {run.name}: count lag {run.lag_s:.2f} s from the last acknowledged like to every "
                     f"exact stored count (polled every {LAG_POLL_S * 1000:.0f} ms)")
    hot = runs[0]
    writes = max(hot.worker.get("count_writes", 0), 1)
    per_batch = hot.worker.get("events", 0) / max(hot.worker.get("batches", 0), 1)
    lines += [
        f"verdict: hot post: {hot.likes / writes:,.0f} likes per count write (seed: ~{SEED_LIKES:,})",
        f"  note: the worker writes one count per post per stream batch, and a batch is {BATCH_SIZE:,} events or "
        f"{BATCH_SECONDS} s, whichever comes first. While the worker keeps pace, likes per write = likes/s x "
        f"{BATCH_SECONDS} s = {hot.load.req_s * BATCH_SECONDS:,.0f} here ({hot.load.req_s:,.0f}/s); when it falls "
        f"behind, batches fill from the backlog, up to {BATCH_SIZE:,} (here {per_batch:,.0f} per batch). "
        f"~{SEED_LIKES:,} needs {SEED_LIKES / BATCH_SECONDS:,.0f} likes/s on one post, or a worker that lags.",
    ]
    for run in runs:
        lines.append(f"verdict: {run.name}: likes/s = {run.load.req_s / floor.req_s:.3f} x the http floor "
                     f"({run.load.req_s:,.0f} vs {floor.req_s:,.0f} req/s, same API processes, same run)")
    lines.append(f"verdict: API CPU per request (API cores busy / req/s): http floor {api_ms(floor):.3f} ms; "
                 + "; ".join(f"{run.name} {api_ms(run.load):.3f} ms per like" for run in runs))
    return lines


def api_ms(load: Load) -> float:
    """Milliseconds of API CPU (every API process, every thread) per request answered."""
    return 1000 * load.cores.get("api", 0.0) / max(load.req_s, 1e-9)


async def seed(seeder: Seeder, users: int, posts: int) -> tuple[list[Reader], list[int]]:
    """Users with tokens, and posts (rows only: a like needs no media), each by its own author, so the
    notifications the likes cause go to as many people as in life, not all to one."""
    readers = await seeder.seed_readers(users, "l")
    post_ids = [seeder.ids.next_id() for _ in range(posts)]
    authors = {post_id: seeder.ids.next_id() for post_id in post_ids}
    await seeder.add_users(list(authors.values()), "a")
    await for_each(post_ids, lambda pid: seeder.add_post(pid, authors[pid]), SEED_CONCURRENCY)
    return readers, post_ids


async def measure(settings: Settings, args: argparse.Namespace, procs: dict[str, BenchProcess]) -> list[str]:
    began = time.perf_counter()
    cpu = CpuMeter()
    for name, process in procs.items():
        cpu.add(name, process)
    cluster = make_cluster(settings)
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        cass = CassandraSession(cluster.connect(KEYSPACE), settings.cassandra_max_in_flight)
        seeder = await Seeder(settings, cass, redis).prepare()
        seed_started = time.perf_counter()
        users, post_ids = await seed(seeder, args.users, args.posts + 2)
        seed_s = time.perf_counter() - seed_started
        hot, warm_post, others = post_ids[0], post_ids[1], post_ids[2:]
        base = procs["api"].url
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            stats_key = Caches.for_settings(settings, redis).like_counts.stats_key
            bench = Bench(http, base, CountProbe(seeder.storage), cass, redis, stats_key, cpu, args.concurrency,
                          args.duration)
            warm, fresh = users[-WARMUP_USERS:], users[:-WARMUP_USERS]  # a short unmeasured warm-up on its own post
            await drive_likes(http, base, ((user, warm_post) for user in warm), args.concurrency, 3.0)
            drained_s = await until_worker_idle(redis, bench.stats_key)
            before = cpu.snapshot()
            floor = await drive(http, f"{base}/healthz", users[:100], args.concurrency, seconds=args.duration)
            floor.cores = CpuMeter.cores(before, cpu.snapshot())
            liked: set[tuple[int, int]] = set()
            hot_run = await bench.like_phase("hot post", fresh_pairs(fresh, lambda: hot, liked), [hot], hot)
            rng = random.Random(3)
            spread = fresh_pairs(fresh[::-1], lambda: hot if rng.random() < HOT_SHARE_SPREAD else rng.choice(others),
                                 liked)  # the users the hot phase did not reach first: they can still like it
            spread_run = await bench.like_phase("spread", spread, [hot, *others], hot)
    finally:
        await redis.aclose()
        cluster.shutdown()
    runs = [hot_run, spread_run]
    return [
        f"Likes benchmark ({os.cpu_count()} cores shared by every process; API {args.api_workers} worker processes; "
        f"keyspace {KEYSPACE})",
        f"seeded {args.users:,} users with tokens and {args.posts + 2:,} posts in {seed_s:.1f} s; "
        f"{args.concurrency} requests in flight, {args.duration:.0f} s per phase; the worker was idle "
        f"{drained_s:.0f} s after the warm-up",
        "",
        *report_table(floor, runs),
        "",
        *report_details(runs),
        "",
        *report_verdicts(floor, runs),
        f"total {time.perf_counter() - began:.0f} s (child logs in {LOG_DIR.relative_to(REPO_ROOT)}/)",
    ]


async def measure_mode(run: ModeRun, args: argparse.Namespace) -> LikeRun:
    """The spread phase alone, on a node of its own: seed, warm up, measure, check."""
    seeder = await Seeder(run.node.settings, run.cass, run.redis).prepare()
    users, post_ids = await seed(seeder, args.mode_users, args.mode_posts + 2)
    hot, warm_post, others = post_ids[0], post_ids[1], post_ids[2:]
    base = run.procs["api"].url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        stats_key = Caches.for_settings(run.node.settings, run.redis).like_counts.stats_key
        bench = Bench(http, base, CountProbe(seeder.storage), run.cass, run.redis, stats_key, run.cpu,
                      args.concurrency, args.mode_duration)
        warm, fresh = users[-WARMUP_USERS:], users[:-WARMUP_USERS]
        await drive_likes(http, base, ((user, warm_post) for user in warm), args.concurrency, 3.0)
        await until_worker_idle(run.redis, bench.stats_key)
        rng = random.Random(3)
        spread = fresh_pairs(fresh, lambda: hot if rng.random() < HOT_SHARE_SPREAD else rng.choice(others), set())
        return await bench.like_phase("spread", spread, [hot, *others], hot)


def compare_modes(args: argparse.Namespace) -> list[str]:
    """The spread phase once per commit log mode, each on a node of its own; a table of the results."""
    runs = run_per_mode("likes", args.commitlog_modes, {**BENCH_ENV, **LIKE_ENV}, args.api_workers,
                        lambda run: measure_mode(run, args))
    return report_modes(runs, args)


def report_modes(runs: list[tuple[CommitLogMode, LikeRun]], args: argparse.Namespace) -> list[str]:
    first = runs[0][1].load.req_s
    lines = [
        f"Commit log modes: the spread phase ({args.concurrency} likes in flight, {args.mode_duration:.0f} s, "
        f"{args.mode_users:,} users, {args.mode_posts:,} posts) on a fresh node per mode, same machine, same run",
        f"{'mode':<14} {'likes/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'lost':>5} "
        f"{'÷ ' + runs[0][0].label:>16}  cores busy",
    ]
    for mode, run in runs:
        load, lost = run.load, sum(run.missing.values())
        lines.append(
            f"{mode.label:<14} {load.req_s:>8,.0f} {load.percentile(0.5):>7.1f} {load.percentile(0.99):>7.1f} "
            f"{load.errors:>6} {lost:>5} {load.req_s / first:>16.2f}  {cpu_note(load.cores)}"
        )
    for mode, run in runs:
        lines.append(f"verdict: {mode.label}: zero lost ({run.likes:,} acknowledged): {verdict(not run.lost)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--users", type=int, default=40_000, help="users (each likes the hot post at most once)")
    parser.add_argument("--posts", type=int, default=1000, help="posts the spread phase spreads 90%% of its likes over")
    parser.add_argument("--api-workers", type=int, default=2, help="API processes")
    parser.add_argument("--commitlog-modes", type=parse_modes, default="periodic,group,batch",
                        help="compare these commit log modes, each on a node of its own (empty: skip)")
    parser.add_argument("--mode-duration", type=float, default=10.0, help="seconds of the spread phase per mode")
    parser.add_argument("--mode-users", type=int, default=12_000, help="users per mode")
    parser.add_argument("--mode-posts", type=int, default=300, help="posts per mode")
    parser.add_argument("--modes-only", action="store_true", help="only the commit log comparison")
    args = parser.parse_args(argv)
    if not args.modes_only:
        settings = Settings.from_env({**os.environ, **BENCH_ENV, **LIKE_ENV})
        prepare_storage(settings)
        with child_processes() as procs:
            procs["api"] = start_api("api-likes", args.api_workers, LIKE_ENV)
            procs["streams"] = BenchProcess("streams-likes", ["-m", "streams"], {**BENCH_ENV, **LIKE_ENV})
            wait_http_ok(f"{procs['api'].url}/healthz", procs["api"])
            wait_log_line(procs["streams"], "Ready")
            lines = uvloop.run(measure(settings, args, procs))
        print("\n".join(lines), flush=True)
    if args.commitlog_modes:
        print("", flush=True)
        print("\n".join(compare_modes(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
