"""API-side CPU per like at the service level, in one process: what `LikeService.like` costs (the post read,
the rate limit, Redis, the produce, the edge write), without HTTP, sessions or the load generator.

    .venv/bin/python -m loadtest.like_cpu [--likes 3000] [--concurrency 64]

Writes to the test keyspace (photos_test) and its own topics (photos-test-likecpu.*), which no worker reads:
each run adds its events there. To compare with an older tree, run this file from that tree's checkout
(`git archive <commit> | tar -x -C /tmp/old && cd /tmp/old && PYTHONPATH=. python <this file>`): it drives
the older service the way its route did (the rate-limit hit before the service, when the service had none).
Alternate the trees in one session; CPU seconds are less sensitive than req/s to other load on the machine,
but not immune to it.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import time
from datetime import UTC, datetime

import uvloop

from app.ids import IdGenerator
from app.likes.service import LikeService
from app.ratelimit import RateLimiter
from app.settings import Settings
from app.storage.migrate import prepare_storage
from app.wiring import Wiring

ENV = {"PHOTOS_CASSANDRA_KEYSPACE": "photos_test", "PHOTOS_KAFKA_TOPIC_PREFIX": "photos-test-likecpu."}
WARM_UP = 300


async def measure(settings: Settings, likes: int, concurrency: int) -> str:
    wiring = Wiring(settings)
    try:
        storage, caches, events = await wiring.storage(), wiring.caches(), await wiring.events()
        await events.wait_connected(30)
        ids = IdGenerator()
        limiter = RateLimiter(caches.redis, settings.rate_window_s)
        parts = {"likes": storage.likes, "counts": caches.like_counts, "posts": storage.posts, "events": events,
                 "feed_cache": caches.feed, "cursors": None}
        counts_its_rate = "limiter" in inspect.signature(LikeService).parameters
        if counts_its_rate:
            service = LikeService(**parts, limiter=limiter, rate_per_user=10**7)

            async def like(user_id: int, post_id: int) -> None:
                await service.like(user_id, post_id)
        else:
            service = LikeService(**parts)

            async def like(user_id: int, post_id: int) -> None:  # the route counted the rate limit first
                await limiter.hit("like", str(user_id), 10**7)
                await service.like(user_id, post_id)

        post_id = ids.next_id()
        await storage.posts.insert(post_id, ids.next_id(), "", [], [], "", None, {}, "", datetime.now(UTC))
        slots = asyncio.Semaphore(concurrency)

        async def one(user_id: int) -> None:
            async with slots:
                await like(user_id, post_id)

        await asyncio.gather(*(one(ids.next_id()) for _ in range(WARM_UP)))
        users = [ids.next_id() for _ in range(likes)]
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(user_id) for user_id in users))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await wiring.close()
    kind = "rate limit in the service's script" if counts_its_rate else "rate limit hit by the route"
    return (f"LikeService.like ({kind}): {1000 * cpu / likes:.3f} ms CPU per like, {likes / wall:,.0f} likes/s, "
            f"{likes:,} likes at {concurrency} in flight, one process ({os.cpu_count()} cores shared by all)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--likes", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    settings = Settings.from_env({**os.environ, **ENV})
    prepare_storage(settings)
    print(uvloop.run(measure(settings, args.likes, args.concurrency)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
