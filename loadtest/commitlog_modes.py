"""A Cassandra node of its own per commit log mode, so a benchmark can compare the modes in one run.

The like and write benchmarks (loadtest/like_benchmark.py, loadtest/write_benchmark.py) run the
same phases once per mode against `cassandra_node(mode)`: a fresh single node started by the stack
launcher's own code (infra/services.py) on free ports, under .stack/bench-commitlog/, with only its
commit log settings changed; it is stopped and deleted afterwards. Kafka and Redis are the stack's.
What the modes mean, and which one the local stack uses, is in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import uvloop
from redis.asyncio import Redis

from app.client_security import redis_options
from app.settings import REPO_ROOT, Settings
from app.storage.cassandra import CassandraSession, make_cluster
from app.storage.migrate import prepare_storage
from infra.procs import free_port, wait_http_ok, wait_log_line
from infra.services import Cassandra
from infra.stack import start_all, stop_all
from loadtest.feed_benchmark import BenchProcess, CpuMeter, child_processes, start_api

T = TypeVar("T")

NODE_DIR = REPO_ROOT / ".stack" / "bench-commitlog"


@dataclass(frozen=True)
class CommitLogMode:
    label: str
    sync: str  # cassandra.yaml commitlog_sync
    window_ms: int  # its window (the periodic sync period, or the group window); unused by batch

    @property
    def env(self) -> dict[str, str]:
        return {
            "PHOTOS_CASSANDRA_COMMITLOG_SYNC": self.sync,
            "PHOTOS_CASSANDRA_COMMITLOG_WINDOW_MS": str(self.window_ms),
        }


MODES = {
    "periodic": CommitLogMode("periodic 10 s", "periodic", 10_000),  # Cassandra's own default: not durable
    "batch": CommitLogMode("batch", "batch", 10),  # the local stack's default
    "group": CommitLogMode("group 10 ms", "group", 10),
}


def parse_modes(text: str) -> list[CommitLogMode]:
    """argparse type: comma-separated names of MODES (empty: none)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODES]
    if unknown:
        choices = ", ".join(MODES)
        raise argparse.ArgumentTypeError(f"unknown commit log mode {', '.join(unknown)}; choose from {choices}")
    return [MODES[name] for name in names]


@dataclass
class Node:
    env: dict[str, str]  # what the benchmark's processes need to use this node
    settings: Settings  # the settings of those processes, for the benchmark itself
    run_dir: Path  # where the node's supervisor keeps its state (for CpuMeter)


@contextmanager
def cassandra_node(mode: CommitLogMode, base_env: dict[str, str]) -> Iterator[Node]:
    """A fresh single Cassandra node in `mode`; `base_env` are the benchmark's other settings."""
    if NODE_DIR.exists():  # left by a benchmark that was itself killed: its node may still run
        stop_all([Cassandra(Settings.from_env({**os.environ, "PHOTOS_STACK_DIR": str(NODE_DIR)}))], quiet=True)
        shutil.rmtree(NODE_DIR, ignore_errors=True)
    env = {
        **base_env,
        **mode.env,
        "PHOTOS_STACK_DIR": str(NODE_DIR),
        "PHOTOS_CASSANDRA_PORT": str(free_port()),
        "PHOTOS_CASSANDRA_STORAGE_PORT": str(free_port()),
    }
    settings = Settings.from_env({**os.environ, **env})
    node = Cassandra(settings)
    failures = asyncio.run(start_all([node]))
    if failures:
        raise RuntimeError(f"the {mode.label} node did not start: {failures[0]}")
    try:
        yield Node({k: v for k, v in env.items() if k != "PHOTOS_STACK_DIR"}, settings, node.state_file.parent)
    finally:
        stop_all([node], quiet=True)
        shutil.rmtree(NODE_DIR, ignore_errors=True)


@dataclass
class ModeRun:
    """What a benchmark's measurement gets for one mode."""

    node: Node
    procs: dict[str, BenchProcess]  # "api" and "streams"
    cpu: CpuMeter  # the node's process, the children, Kafka, Redis and the load generator
    cass: CassandraSession  # on the benchmark's keyspace of this node
    redis: Redis


def run_per_mode(
    name: str, modes: list[CommitLogMode], base_env: dict[str, str], api_workers: int,
    measure: Callable[[ModeRun], Awaitable[T]],
) -> list[tuple[CommitLogMode, T]]:
    """For each mode: a node in that mode, the keyspace of `base_env` migrated on it, topics and a consumer
    group of its own, the real API and stream worker as child processes, then `measure`; all stopped after."""
    results = []
    for mode in modes:
        isolation = {
            "PHOTOS_KAFKA_TOPIC_PREFIX": f"photos-bench-{name}-{mode.sync}.",
            "PHOTOS_STREAMS_APP_ID": f"photos-bench-{name}-{mode.sync}-streams",
        }
        with cassandra_node(mode, {**base_env, **isolation}) as node:
            prepare_storage(node.settings)
            with child_processes() as procs:
                procs["api"] = start_api(f"api-{name}-{mode.sync}", api_workers, node.env)
                procs["streams"] = BenchProcess(f"streams-{name}-{mode.sync}", ["-m", "streams"], node.env)
                wait_http_ok(f"{procs['api'].url}/healthz", procs["api"])
                wait_log_line(procs["streams"], "Ready")
                results.append((mode, uvloop.run(_measure(node, procs, measure))))
    return results


async def _measure(node: Node, procs: dict[str, BenchProcess], measure: Callable[[ModeRun], Awaitable[T]]) -> T:
    cpu = CpuMeter(node.run_dir)
    for name, process in procs.items():
        cpu.add(name, process)
    cluster = make_cluster(node.settings)
    redis = Redis.from_url(node.settings.redis_url, **redis_options(node.settings))
    try:
        session = await asyncio.to_thread(cluster.connect, node.settings.cassandra_keyspace)
        cass = CassandraSession(session, node.settings.cassandra_max_in_flight)
        return await measure(ModeRun(node, procs, cpu, cass, redis))
    finally:
        await redis.aclose()
        cluster.shutdown()
