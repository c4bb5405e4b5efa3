"""Fixtures of the e2e tests: the API (two worker processes) and the stream worker, started once for
the run, an HTTP session (each of its answers held to /openapi.json: tests/e2e/client/contract.py) and a
fresh account. The helpers the tests call the API with are in
tests/e2e/client/, the processes in tests/e2e/processes.py."""

from __future__ import annotations

import aiohttp
import pytest

from app.settings import Settings
from infra.procs import free_port
from tests.e2e.client.contract import checked_session
from tests.e2e.client.users import Account, register
from tests.e2e.processes import start_api, start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def api_url(migrated: Settings):
    process, base_url = start_api("api", {}, workers=2)
    yield base_url
    process.stop()


@pytest.fixture(scope="session")
def streams_worker(migrated: Settings):
    metrics_port = free_port()
    process = start_worker("streams", {"PHOTOS_STREAMS_METRICS_PORT": str(metrics_port)})
    process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # docs/metrics.md
    yield process
    process.stop()


@pytest.fixture(scope="session")
async def http():
    async with checked_session() as session:
        yield session


@pytest.fixture(scope="module")
async def stack_http():
    """A plain session with a generous timeout, for the modules that run a private stack (private_stack.py)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def account(http, api_url) -> Account:
    return await register(http, api_url)
