"""The API and stream worker processes the e2e tests start: the session's pair (tests/e2e/conftest.py) and
ones with settings of their own.

`isolated_env` / `isolated_api` / `start_worker` serve the tests that SIGKILL a worker: their topics and
consumer group are named after this run's, so killing the worker disturbs no other test and no other
test run, and a dead member's partitions are handed over within seconds. (A whole stack of its own,
servers included, is tests/e2e/private_stack.py.)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.events import ensure_topics
from app.settings import REPO_ROOT, Settings
from infra.procs import ManagedProcess, free_port, wait_http_ok, wait_log_line

LOG_DIR = REPO_ROOT / ".stack" / "test-logs"
# every test registers from 127.0.0.1: per-address limits are tested with their own API process
GENEROUS_LIMITS = {
    "PHOTOS_REGISTER_RATE_PER_ADDRESS": "100000",
    "PHOTOS_LOGIN_RATE_PER_ADDRESS": "100000",
    "PHOTOS_UPLOAD_PIXELS_PER_ADDRESS": "1000000000000",
    "PHOTOS_FOLLOW_RATE_PER_ADDRESS": "1000000",
    "PHOTOS_PROFILE_RATE_PER_ADDRESS": "1000000",
    "PHOTOS_NOTIFICATION_TICKET_RATE_PER_ADDRESS": "1000000",
    # tests register dozens of accounts at once; shedding a burst of password hashes is test_back_pressure's
    "PHOTOS_ARGON2_MAX_WAITING": "100000",
}


def start_process(name: str, args: list[str], env: dict[str, str]) -> ManagedProcess:
    """`python <args>` logging to .stack/test-logs/<name>.log."""
    return ManagedProcess(name, args, env, LOG_DIR)


_ops_urls: dict[str, str] = {}  # an API's base URL -> its ops listener's


def start_api(name: str, env: dict[str, str], workers: int = 1) -> tuple[ManagedProcess, str]:
    """An API process on a free port, and its ops listener on another, answering /healthz; returns it and its
    base URL (`ops_url(base_url)` is its ops listener's)."""
    port = free_port()
    env = {**GENEROUS_LIMITS, "PHOTOS_OPS_PORT": str(free_port()), **env, "PHOTOS_API_PORT": str(port)}
    process = start_process(name, ["-m", "app.main", "--workers", str(workers)], env)
    base_url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base_url}/healthz", process)
    _ops_urls[base_url] = f"http://127.0.0.1:{env['PHOTOS_OPS_PORT']}"
    return process, base_url


def ops_url(base_url: str) -> str:
    """The ops listener (/metrics, the detailed /readyz) of the API `start_api` started at `base_url`."""
    return _ops_urls[base_url]


def metrics_url(base_url: str) -> str:
    return f"{ops_url(base_url)}/metrics"


def start_worker(name: str, env: dict[str, str]) -> ManagedProcess:
    """A stream worker that has joined its consumer group and logged "Ready"."""
    worker = start_process(name, ["-m", "streams"], env)
    wait_log_line(worker, "Ready")
    return worker


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


def isolated_api_fixture(name: str, env: dict[str, str]):
    """A module-scoped fixture: the base URL of `isolated_api(name, env)`, started once for the module.

    In a test module: `crash_api = isolated_api_fixture("likecrash", CRASH_ENV)`."""

    @pytest.fixture(scope="module")
    def isolated(migrated):
        with isolated_api(name, env) as url:
            yield url

    return isolated
