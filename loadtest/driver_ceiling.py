"""The driver ceiling: prepared single-partition reads and writes per second on this machine.

Measures the project's asyncio bridge (`app.storage.cassandra.CassandraSession`) against the
driver's own `execute_concurrent_with_args` at several concurrency levels, in the same run,
and prints ops/s and their ratio. Later benchmarks compare the API against these figures. The table and
its statements are app/storage/ceiling.py's (keyspace photos_bench, the benchmarks' own).

    .venv/bin/python -m loadtest.driver_ceiling [--ops 20000] [--levels 16,64,256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass

from cassandra.concurrent import execute_concurrent_with_args

from app.settings import Settings
from app.storage.cassandra import CassandraSession, make_cluster
from app.storage.ceiling import KEYSPACE, CeilingTables

VALUE = os.urandom(100)


@dataclass
class Measurement:
    op: str
    concurrency: int
    driver_ops_s: float
    bridge_ops_s: float

    @property
    def ratio(self) -> float:
        return self.bridge_ops_s / self.driver_ops_s


def run_driver(session, statement, params: list[tuple], concurrency: int) -> float:
    started = time.perf_counter()
    for ok, result in execute_concurrent_with_args(session, statement, params, concurrency=concurrency):
        if not ok:
            raise result
    return len(params) / (time.perf_counter() - started)


async def run_bridge(cass: CassandraSession, statement, params: list[tuple], concurrency: int) -> float:
    queue = iter(params)

    async def worker() -> None:
        for p in queue:  # the shared iterator hands each tuple to exactly one worker
            await cass.execute(statement, p)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(params) / (time.perf_counter() - started)


async def measure(settings: Settings, ops: int, levels: list[int], rounds: int) -> list[Measurement]:
    cluster = make_cluster(settings)
    session = cluster.connect()
    try:
        tables = CeilingTables(session).create(settings.cassandra_replication).prepare()
        session.set_keyspace(KEYSPACE)
        write, read = tables.kv_write, tables.kv_read
        writes = [(k, VALUE) for k in range(ops)]
        reads = [(k,) for k in range(ops)]
        # warm-up: Cassandra's JIT and caches, the driver's connections; also writes every key read later
        run_driver(session, write, writes, max(levels))
        run_driver(session, read, reads, max(levels))
        results = []
        for concurrency in levels:
            cass = CassandraSession(session, max_in_flight=concurrency)
            for op, statement, params in (("write", write, writes), ("read", read, reads)):
                driver, bridge = [], []
                for _ in range(rounds):  # alternate so drift on a shared machine hits both alike
                    driver.append(run_driver(session, statement, params, concurrency))
                    bridge.append(await run_bridge(cass, statement, params, concurrency))
                results.append(Measurement(op, concurrency, max(driver), max(bridge)))
        return results
    finally:
        cluster.shutdown()


def report(results: list[Measurement]) -> str:
    lines = [f"{'op':<6} {'in-flight':>9} {'driver ops/s':>13} {'bridge ops/s':>13} {'bridge/driver':>14}"]
    for m in results:
        lines.append(f"{m.op:<6} {m.concurrency:>9} {m.driver_ops_s:>13,.0f} {m.bridge_ops_s:>13,.0f} {m.ratio:>14.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000, help="operations per measurement")
    parser.add_argument("--levels", default="16,64,256", help="requests in flight, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per side; the best is kept")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    results = asyncio.run(measure(Settings.from_env(), args.ops, levels, args.rounds))
    print(f"Cassandra driver ceiling: prepared single-partition ops, {args.ops} per measurement, best of {args.rounds}")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
