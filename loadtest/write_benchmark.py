"""Follows and uploads under each commit log mode: what durable acknowledgements cost the write paths.

    .venv/bin/python -m loadtest.write_benchmark [--modes periodic,group,batch] [--duration 10]
                                                 [--concurrency 64] [--upload-concurrency 8]
                                                 [--users 3000] [--api-workers 2]

For each mode, a Cassandra node of its own in that mode (loadtest/commitlog_modes.py), its own
topics and consumer group, the real API (`python -m app.main --workers 2`) and stream worker as
child processes (logs in .stack/bench-logs/), users seeded with tokens through the repositories,
then three closed-loop phases, each for --duration seconds:
  http floor  GET /healthz: what HTTP alone costs these processes and this load generator (noise gauge);
  follow x1   PUT /v1/users/{id}/follow, one at a time: the latency a commit log mode adds to a write
              when the node is not busy;
  follow      the same with --concurrency in flight, never the same pair twice in the run, onto 200
              followees; after each follow phase every acknowledged edge is read back from
              `following`, and the lag until every followee's follower_count is exact is measured;
  upload      POST /v1/posts with a small JPEG, --upload-concurrency in flight (the image pipeline is
              CPU-bound); afterwards every acknowledged post is read back.
The table compares each phase's req/s with the first mode's (periodic, Cassandra's default, which
acknowledges before the commit log is on disk). The load generator shares the machine's cores with
everything it measures; the "cores busy" column says who used them. About a minute per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from app.feed.writer import for_each
from app.settings import REPO_ROOT
from app.wiring import Storage
from loadtest.commitlog_modes import CommitLogMode, ModeRun, parse_modes, run_per_mode
from loadtest.feed_benchmark import (
    BENCH_ENV,
    LOG_DIR,
    PHOTO,
    CpuMeter,
    Load,
    cpu_note,
    drive,
    verdict,
)
from loadtest.seed_feed import SEED_CONCURRENCY, Reader, Seeder

KEYSPACE = "photos_bench_writes"
WRITE_ENV = {
    "PHOTOS_CASSANDRA_KEYSPACE": KEYSPACE,
    "PHOTOS_MEDIA_DIR": str(REPO_ROOT / ".stack" / "bench-media-writes"),
}
FOLLOWEES = 200
COUNT_TIMEOUT_S = 120.0
QUIET_CORES = 0.3
QUIET_TIMEOUT_S = 60.0


@dataclass
class Phase:
    name: str
    load: Load
    acknowledged: list = field(default_factory=list)  # what each 200/201/204 created
    lost: int = 0
    lag_s: float | None = None  # follow: from the last acknowledgement to every count exact

    @property
    def errors(self) -> int:
        """Answers that acknowledged nothing (any status but the phase's success, and client errors)."""
        return self.load.errors if self.name == "http floor" else self.load.requests - len(self.acknowledged)


async def closed_loop(http: aiohttp.ClientSession, concurrency: int, seconds: float, request) -> Phase:
    """`request()` (an async context manager factory yielding (response, what it created)) in a closed loop."""
    phase = Phase("", Load("", concurrency, 0.0, [], Counter(), Counter(), Counter()))
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                status, created = await request()
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, created = type(exc).__name__, None
            phase.load.latencies.append(time.perf_counter() - sent)
            phase.load.statuses[status] += 1
            if created is not None:
                phase.acknowledged.append(created)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    phase.load.seconds = time.perf_counter() - started
    return phase


class WriteBench:
    def __init__(self, http: aiohttp.ClientSession, base: str, storage: Storage, users: list[Reader],
                 args: argparse.Namespace) -> None:
        self.http = http
        self.base = base
        self.storage = storage
        self.args = args
        followees, followers = users[:FOLLOWEES], users[FOLLOWEES:]
        # every pair once in the run, and pairs in flight together share neither follower nor followee: a
        # person follows one account at a time (concurrent follows by one user would contend on one Paxos
        # partition, which measures contention, not the write path)
        self.pairs = ((follower, followees[(i + turn) % len(followees)])
                      for turn in range(len(followees)) for i, follower in enumerate(followers))
        self.followed = Counter()  # followee -> follows acknowledged so far in the run
        self.uploaders = itertools.cycle(users)

    async def follow_phase(self, name: str, concurrency: int) -> Phase:
        pairs = self.pairs

        async def request():
            follower, followee = next(pairs)
            async with self.http.put(f"{self.base}/v1/users/{followee.user_id}/follow", headers=follower.auth) as r:
                await r.read()
                return r.status, (follower.user_id, followee.user_id) if r.status == 204 else None

        phase = await closed_loop(self.http, concurrency, self.args.duration, request)
        phase.name = name
        last_ack = time.perf_counter()
        follows, users = self.storage.follows, self.storage.users

        async def check(pair: tuple[int, int]) -> None:
            if await follows.edge(*pair) is None:
                phase.lost += 1

        await for_each(phase.acknowledged, check, SEED_CONCURRENCY)
        self.followed.update(followee for _, followee in phase.acknowledged)
        expected = {followee: self.followed[followee] for _, followee in phase.acknowledged}

        async def exact() -> bool:
            rows = await asyncio.gather(*(users.get(uid) for uid in expected))
            return all((r.follower_count or 0) == expected[uid] for uid, r in zip(expected, rows, strict=True))

        deadline = time.perf_counter() + COUNT_TIMEOUT_S
        while time.perf_counter() < deadline:  # lag_s stays None if the counts never get there
            if await exact():
                phase.lag_s = time.perf_counter() - last_ack
                break
            await asyncio.sleep(0.25)
        return phase

    async def upload_phase(self) -> Phase:
        async def request():
            author = next(self.uploaders)
            data = aiohttp.FormData()
            data.add_field("image", PHOTO, filename="photo.jpg", content_type="image/jpeg")
            async with self.http.post(f"{self.base}/v1/posts", data=data, headers=author.auth) as r:
                body = await r.json() if r.status == 201 else None
                return r.status, int(body["id"]) if body else None

        phase = await closed_loop(self.http, self.args.upload_concurrency, self.args.duration, request)
        phase.name = "upload"
        posts = self.storage.posts

        async def check(post_id: int) -> None:
            if await posts.get(post_id) is None:  # no row, or one without an author: no post
                phase.lost += 1

        await for_each(phase.acknowledged, check, SEED_CONCURRENCY)
        return phase


async def until_quiet(cpu: CpuMeter, below: float = QUIET_CORES, timeout_s: float = QUIET_TIMEOUT_S) -> None:
    """Wait until every process the meter watches together uses less than `below` cores for a second."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        before = cpu.snapshot()
        await asyncio.sleep(1.0)
        busy = CpuMeter.cores(before, cpu.snapshot())
        if sum(cores for name, cores in busy.items() if name != "loadgen") < below:
            return


async def measure_mode(run: ModeRun, args: argparse.Namespace) -> list[Phase]:
    cpu, cass = run.cpu, run.cass
    seeder = await Seeder(run.node.settings, cass, run.redis).prepare()
    users = await seeder.seed_readers(args.users, "w")
    base = run.procs["api"].url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        bench = WriteBench(http, base, seeder.storage, users, args)
        await drive(http, f"{base}/healthz", users[:50], args.concurrency, seconds=2.0)  # warm-up
        await until_quiet(cpu)  # the seed's flushes and compactions would be measured with the first phase
        phases = []
        before = cpu.snapshot()
        floor = Phase("http floor", await drive(http, f"{base}/healthz", users[:100], args.concurrency,
                                                seconds=args.duration))
        floor.load.cores = CpuMeter.cores(before, cpu.snapshot())
        phases.append(floor)
        steps = (lambda: bench.follow_phase("follow x1", 1), lambda: bench.follow_phase("follow", args.concurrency),
                 bench.upload_phase)
        for step in steps:
            before = cpu.snapshot()
            phase = await step()
            phase.load.cores = CpuMeter.cores(before, cpu.snapshot())  # the load and its checks
            phases.append(phase)
        return phases


def report(results: list[tuple[CommitLogMode, list[Phase]]], args: argparse.Namespace) -> list[str]:
    first = {phase.name: phase.load.req_s for phase in results[0][1]}
    lines = [
        f"Write benchmark ({os.cpu_count()} cores shared by every process, the load generator included; API "
        f"{args.api_workers} processes; a fresh Cassandra node per commit log mode; {args.duration:.0f} s per phase)",
        f"{'phase':<11} {'mode':<14} {'in-flight':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'lost':>5} {'÷ ' + results[0][0].label:>16} {'count lag s':>11}  cores busy",
    ]
    for name in first:
        for mode, phases in results:
            phase = next(p for p in phases if p.name == name)
            load = phase.load
            lag = "-" if not phase.name.startswith("follow") else (
                f"{phase.lag_s:.2f}" if phase.lag_s is not None else "never")
            lines.append(
                f"{name:<11} {mode.label:<14} {load.concurrency:>9} {load.req_s:>8,.0f} {load.percentile(0.5):>7.1f} "
                f"{load.percentile(0.99):>7.1f} {phase.errors:>6} {phase.lost if name != 'http floor' else '-':>5} "
                f"{load.req_s / first[name]:>16.2f} {lag:>11}  {cpu_note(load.cores)}"
            )
    for mode, phases in results:
        for phase in phases[1:]:
            statuses = ", ".join(f"{status}: {n}" for status, n in phase.load.statuses.most_common())
            lines.append(f"verdict: {phase.name} on {mode.label}: zero lost ({len(phase.acknowledged):,} "
                         f"acknowledged, {phase.lost} missing; answers {statuses}): {verdict(phase.lost == 0)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=parse_modes, default="periodic,group,batch", help="commit log modes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=64, help="follows (and floor requests) in flight")
    parser.add_argument("--upload-concurrency", type=int, default=8, help="uploads in flight")
    parser.add_argument("--users", type=int, default=3000, help="users seeded per mode (the first 200 are followed)")
    parser.add_argument("--api-workers", type=int, default=2, help="API processes")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    results = run_per_mode("writes", args.modes, {**BENCH_ENV, **WRITE_ENV}, args.api_workers,
                           lambda run: measure_mode(run, args))
    print("\n".join(report(results, args)))
    print(f"total {time.perf_counter() - began:.0f} s (child logs in {LOG_DIR.relative_to(REPO_ROOT)}/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
