"""An API and stream workers of their own, for the tests that SIGKILL a worker.

Their topics and consumer group are named after this run's, so killing the worker disturbs no
other test and no other test run, and a dead member's partitions are handed over within seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

from app.events import ensure_topics
from app.settings import Settings
from tests.e2e.conftest import start_api
from tests.support.processes import ManagedProcess, wait_log_line


def isolated_env(name: str, **settings: str) -> dict[str, str]:
    """Environment of processes with their own topics and consumer group, plus `settings`."""
    return {
        "PHOTOS_KAFKA_TOPIC_PREFIX": f"{os.environ['PHOTOS_KAFKA_TOPIC_PREFIX']}{name}.",
        "PHOTOS_STREAMS_APP_ID": f"{os.environ['PHOTOS_STREAMS_APP_ID']}-{name}",
        "PHOTOS_STREAMS_SESSION_TIMEOUT_S": "6",  # the killed member's partitions are handed over soon
        **settings,
    }


@contextmanager
def isolated_api(name: str, env: dict[str, str]) -> Iterator[str]:
    """An API process on `env`'s topics (created first); yields its base URL."""
    asyncio.run(ensure_topics(Settings.from_env({**os.environ, **env})))
    process, url = start_api(f"api-{name}", env)
    try:
        yield url
    finally:
        process.stop()


def start_worker(name: str, env: dict[str, str]) -> ManagedProcess:
    worker = ManagedProcess(name, ["-m", "streams"], env)
    wait_log_line(worker, "Ready")
    return worker
