import ipaddress
import random

import aiohttp
import pytest

from tests.e2e.client.contract import checked_session
from tests.e2e.client.users import unique_username
from tests.e2e.processes import isolated_api_fixture, start_api


@pytest.fixture(scope="module")
def strict_api(migrated):
    process, url = start_api(
        "api-strict",
        {"PHOTOS_REGISTER_RATE_PER_ADDRESS": "3", "PHOTOS_LOGIN_RATE_PER_ADDRESS": "3", "PHOTOS_RATE_WINDOW_S": "3600"},
    )
    yield url
    process.stop()


async def test_registrations_per_address_are_rate_limited_and_refused_ones_create_nothing(http, strict_api):
    refused = []
    for _ in range(5):
        username = unique_username()
        async with http.post(f"{strict_api}/v1/accounts", json={"username": username, "password": "pw pw pw pw"}) as r:
            if r.status == 429:
                assert int(r.headers["Retry-After"]) >= 1
                refused.append(username)
            else:
                assert r.status == 201
    assert refused
    for username in refused:
        async with http.post(f"{strict_api}/v1/sessions", json={"username": username, "password": "pw pw pw pw"}) as r:
            assert r.status in (401, 429)  # never created; the login may itself be limited


async def test_logins_per_address_are_rate_limited(http, strict_api):
    statuses = []
    for _ in range(5):
        body = {"username": unique_username(), "password": "x" * 8}
        async with http.post(f"{strict_api}/v1/sessions", json=body) as r:
            statuses.append(r.status)
    assert 429 in statuses


# An API behind a "load balancer" on 127.0.0.1: the tests' requests come from there and say whom they
# forward for; a request from 127.0.0.2 (loopback too) comes from a peer that is no trusted proxy.
proxied_api = isolated_api_fixture("proxied", {
    "PHOTOS_TRUSTED_PROXIES": "127.0.0.1/32", "PHOTOS_REGISTER_RATE_PER_ADDRESS": "2", "PHOTOS_RATE_WINDOW_S": "3600",
})
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def some_client() -> str:
    """An address no other run is likely to have used in this window: the counts live in the shared Redis."""
    return str(SHARED_ADDRESS_SPACE[random.randrange(SHARED_ADDRESS_SPACE.num_addresses)])


async def register_from(http, url: str, forwarded_for: str) -> int:
    body = {"username": unique_username(), "password": "pw pw pw pw"}
    async with http.post(f"{url}/v1/accounts", json=body, headers={"X-Forwarded-For": forwarded_for}) as r:
        return r.status


async def test_clients_behind_a_trusted_proxy_each_have_their_own_limit(http, proxied_api):
    first, second = some_client(), some_client()
    assert [await register_from(http, proxied_api, first) for _ in range(3)] == [201, 201, 429]
    assert await register_from(http, proxied_api, second) == 201
    # an address the client wrote itself, left of the one the proxy appended, changes nothing
    assert await register_from(http, proxied_api, f"{some_client()}, {first}") == 429


async def test_the_forwarded_for_of_a_peer_that_is_no_trusted_proxy_is_ignored(proxied_api):
    async with checked_session(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as other_peer:
        statuses = [await register_from(other_peer, proxied_api, some_client()) for _ in range(3)]
    assert statuses[-1] == 429, statuses  # one bucket, 127.0.0.2's, whatever each request claims
