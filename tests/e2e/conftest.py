"""The API (two worker processes) and the stream worker, started once for the e2e tests (tests/e2e/processes.py
starts them), and the helpers that make an account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp
import pytest

from app.settings import Settings
from infra.procs import free_port
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
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Account:
    id: str
    username: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_username(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def register(http: aiohttp.ClientSession, api_url: str, username: str | None = None) -> Account:
    username = username or unique_username()
    password = "correct horse battery"
    async with http.post(f"{api_url}/v1/accounts", json={"username": username, "password": password}) as response:
        assert response.status == 201, await response.text()
    async with http.post(f"{api_url}/v1/sessions", json={"username": username, "password": password}) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return Account(id=body["user"]["id"], username=username, password=password, token=body["token"])


async def list_all(http, api_url, viewer, path: str, limit: int) -> list[dict]:
    """Every item of a paged list, following next_cursor to the end."""
    items, cursor = [], None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}{path}", params=params, headers=viewer.auth) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.fixture
async def account(http, api_url) -> Account:
    return await register(http, api_url)
