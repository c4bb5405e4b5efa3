import asyncio
import time

from app.ids import SEQUENCE_BITS, SHARD_BITS
from tests.e2e.client.users import register, unique_username
from tests.e2e.processes import start_api


async def test_registration_returns_the_new_user(http, api_url):
    username = unique_username()
    body = {"username": username, "password": "long enough pw", "display_name": "Ada"}
    async with http.post(f"{api_url}/v1/accounts", json=body) as response:
        assert response.status == 201
        user = await response.json()
    assert user["username"] == username
    assert user["display_name"] == "Ada"
    assert user["id"].isdigit()
    assert user["follower_count"] == user["following_count"] == user["post_count"] == 0
    assert user["followed_by_me"] is False
    assert user["created_at"].endswith("Z")


async def test_usernames_are_unique_regardless_of_case(http, api_url):
    account = await register(http, api_url)
    body = {"username": account.username.upper(), "password": "another password"}
    async with http.post(f"{api_url}/v1/accounts", json=body) as response:
        assert response.status == 409
        assert (await response.json())["error"]["code"] == "username_taken"


async def test_concurrent_registrations_of_one_name_let_exactly_one_win(http, api_url, settings):
    username = unique_username()

    async def attempt(i: int) -> int:
        body = {"username": username, "password": f"password number {i}"}
        async with http.post(f"{api_url}/v1/accounts", json=body) as response:
            return response.status

    # fewer contenders than the per-username login limit, so every password can be tried below
    contenders = min(8, settings.login_rate_per_username)
    statuses = await asyncio.gather(*(attempt(i) for i in range(contenders)))
    assert statuses.count(201) == 1
    assert statuses.count(409) == contenders - 1
    # and the winner is the only account that can log in under that name
    winners = []
    for i in range(contenders):
        body = {"username": username, "password": f"password number {i}"}
        async with http.post(f"{api_url}/v1/sessions", json=body) as response:
            if response.status == 201:
                winners.append(i)
    assert len(winners) == 1


async def test_login_me_and_logout_which_revokes_the_token_at_once(http, api_url, account):
    async with http.get(f"{api_url}/v1/me", headers=account.auth) as response:
        assert response.status == 200
        assert (await response.json())["username"] == account.username
    async with http.delete(f"{api_url}/v1/sessions/current", headers=account.auth) as response:
        assert response.status == 204
    # two API worker processes: whichever answers, the token is dead
    for _ in range(6):
        async with http.get(f"{api_url}/v1/me", headers=account.auth) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_token"


async def test_wrong_password_is_refused_without_saying_which_part_was_wrong(http, api_url, account):
    for username in (account.username, unique_username()):
        body = {"username": username, "password": "not the password"}
        async with http.post(f"{api_url}/v1/sessions", json=body) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_credentials"


async def test_profile_update_changes_display_name_and_bio(http, api_url, account):
    patch = {"display_name": "Grace H.", "bio": "compilers & coffee"}
    async with http.patch(f"{api_url}/v1/me", json=patch, headers=account.auth) as response:
        assert response.status == 200
        assert (await response.json())["bio"] == "compilers & coffee"
    async with http.get(f"{api_url}/v1/users/{account.id}", headers=account.auth) as response:
        user = await response.json()
    assert (user["display_name"], user["bio"]) == ("Grace H.", "compilers & coffee")


async def test_users_are_found_by_id_and_by_username(http, api_url, account):
    other = await register(http, api_url)
    async with http.get(f"{api_url}/v1/users/by-username/{other.username.upper()}", headers=account.auth) as r:
        assert r.status == 200
        assert (await r.json())["id"] == other.id
    async with http.get(f"{api_url}/v1/users/{other.id}", headers=account.auth) as r:
        assert (await r.json())["username"] == other.username
    missing_paths = (
        "/v1/users/123456789", "/v1/users/not-an-id", "/v1/users/%C2%B9", "/v1/users/%D9%A3",
        f"/v1/users/by-username/{unique_username()}",
    )
    for missing in missing_paths:
        async with http.get(f"{api_url}{missing}", headers=account.auth) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "user_not_found"


async def test_login_attempts_per_username_are_rate_limited(http, api_url, settings):
    account = await register(http, api_url)
    # the limiter counts per fixed window: attempts that straddle a window's end split their count
    left_in_window = settings.rate_window_s - time.time() % settings.rate_window_s
    if left_in_window < 15:
        await asyncio.sleep(left_in_window + 0.1)  # the clock, not an effect: start in a fresh window
    statuses = []
    for _ in range(settings.login_rate_per_username + 2):
        body = {"username": account.username, "password": "guessing wrongly"}
        async with http.post(f"{api_url}/v1/sessions", json=body) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert (await response.json())["error"]["code"] == "rate_limited"
    assert 429 in statuses
    # even the right password is refused while the name is locked
    body = {"username": account.username, "password": account.password}
    async with http.post(f"{api_url}/v1/sessions", json=body) as response:
        assert response.status == 429


async def test_api_workers_take_consecutive_id_shards_from_the_setting(http, migrated):
    process, url = start_api("api-sharded", {"PHOTOS_ID_SHARD": "4000"}, workers=2)
    try:
        accounts = [await register(http, url) for _ in range(8)]
    finally:
        process.stop()
    shards = {(int(a.id) >> SEQUENCE_BITS) & ((1 << SHARD_BITS) - 1) for a in accounts}
    assert shards <= {4000, 4001} and shards
