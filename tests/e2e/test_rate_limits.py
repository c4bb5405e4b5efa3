import pytest

from tests.e2e.client.users import unique_username
from tests.e2e.processes import start_api


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
