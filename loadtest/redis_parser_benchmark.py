"""Does the `hiredis` reply parser earn its place? The API's Redis traffic with each parser, in one run.

    .venv/bin/python -m loadtest.redis_parser_benchmark [--seconds 5] [--concurrency 32] [--rounds 3]

The workload is what a page read sends: an MGET of 20 cached objects (~600-byte JSON each) and a
pipeline of three small commands, from `--concurrency` tasks at once against the local Redis. Each
parser runs `--rounds` times, interleaved (python, hiredis, python, ...), so drift on a shared
machine hits both alike; it prints operations per second and the client's CPU per operation
(this process's CPU time: the parser runs here), and the ratio hiredis / python. Keys live under
`photos-bench:parser:` and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import orjson
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser
from redis.asyncio import BlockingConnectionPool, Redis

from app.client_security import redis_options
from app.settings import Settings

PREFIX = "photos-bench:parser:"
OBJECTS = 200
PAGE = 20


def sample_object(i: int) -> bytes:
    return orjson.dumps({
        "id": str(10**17 + i), "author": {"id": str(10**16 + i), "username": f"user_{i:06d}", "display_name": "A B"},
        "caption": "a photo at the lake, evening light #lake #evening " * 2, "hashtags": ["lake", "evening"],
        "mentions": [], "location": "Lake", "filter": "clarendon", "created_at": "2026-12-07T09:00:00.000Z",
        "media": {size: {"key": f"p/{i}/{size}.jpg", "width": w, "height": w}
                  for size, w in (("thumb", 150), ("small", 320), ("medium", 640), ("large", 1080))},
    })


async def one_round(settings: Settings, parser: type, seconds: float, concurrency: int) -> tuple[float, float]:
    """(operations per second, client CPU microseconds per operation) of one parser for `seconds`."""
    pool = BlockingConnectionPool.from_url(settings.redis_url, max_connections=concurrency, parser_class=parser,
                                           **redis_options(settings))
    client = Redis.from_pool(pool)
    keys = [f"{PREFIX}{i}" for i in range(OBJECTS)]
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < deadline:
            page = [keys[(i + j) % OBJECTS] for j in range(PAGE)]
            values = await client.mget(page)
            assert all(values)
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(page[0]).exists(page[1]).ttl(page[2])
                await pipe.execute()
            done += 2
            i += PAGE

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker(n * 7) for n in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await client.aclose()
    return done / wall, cpu / done * 1e6


async def run(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    setup = Redis.from_url(settings.redis_url, **redis_options(settings))
    await setup.mset({f"{PREFIX}{i}": sample_object(i) for i in range(OBJECTS)})
    results: dict[str, list[tuple[float, float]]] = {"python": [], "hiredis": []}
    try:
        for _ in range(args.rounds):
            for name, parser in (("python", _AsyncRESP2Parser), ("hiredis", _AsyncHiredisParser)):
                results[name].append(await one_round(settings, parser, args.seconds, args.concurrency))
    finally:
        await setup.delete(*(f"{PREFIX}{i}" for i in range(OBJECTS)))
        await setup.aclose()
    print(f"Redis reply parsers: MGET of {PAGE} objects + a 3-command pipeline, {args.concurrency} tasks, "
          f"{args.rounds} x {args.seconds:g} s each, interleaved (load generator and Redis share this machine)")
    print(f"{'parser':<8} {'ops/s (median)':>15} {'client CPU µs/op':>17}")
    medians = {}
    for name, rounds in results.items():
        ops, cpu = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
        medians[name] = (ops, cpu)
        print(f"{name:<8} {ops:>15,.0f} {cpu:>17.1f}")
    print(f"hiredis / python: {medians['hiredis'][0] / medians['python'][0]:.2f}x throughput, "
          f"{medians['hiredis'][1] / medians['python'][1]:.2f}x CPU per operation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.redis_parser_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
