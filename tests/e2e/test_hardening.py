"""One test per kind of bad input: each gets the right 4xx JSON error and changes nothing."""

import re
import secrets

import pytest

from app.auth import SessionStore
from app.cursors import CursorCodec
from app.main import all_routes
from app.storage import cassandra
from app.storage.sessions import SessionTable
from tests.e2e.client.common import expect_error
from tests.e2e.client.users import register, unique_username, username_exists
from tests.e2e.processes import metrics_url
from tests.support.polling import eventually

# bidirectional controls and zero-width characters: text that reads otherwise than it is (app/text.py)
INVISIBLE = ["\u202e", "\u202a", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u200b", "\ufeff"]


async def test_malformed_json_is_400_and_creates_nothing(http, api_url, account):
    username = unique_username()
    data = f'{{"username": "{username}", "password": "long enough"'
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{api_url}/v1/accounts", data=data, headers=headers) as response:
        await expect_error(response, 400, "invalid_json")
    assert not await username_exists(http, api_url, account, username)


async def test_a_json_array_instead_of_an_object_is_422(http, api_url):
    async with http.post(f"{api_url}/v1/accounts", json=["a", "b"]) as response:
        await expect_error(response, 422)


async def test_wrong_field_types_are_422(http, api_url, account):
    username = unique_username()
    async with http.post(f"{api_url}/v1/accounts", json={"username": username, "password": 12345678}) as response:
        await expect_error(response, 422, "wrong_type")
    assert not await username_exists(http, api_url, account, username)


async def test_missing_fields_are_422(http, api_url):
    async with http.post(f"{api_url}/v1/accounts", json={"username": unique_username()}) as response:
        await expect_error(response, 422, "missing_field")


async def test_unknown_fields_are_422_and_change_nothing(http, api_url, account):
    async with http.patch(f"{api_url}/v1/me", json={"bio": "new", "is_admin": True}, headers=account.auth) as r:
        await expect_error(r, 422, "unknown_field")
    async with http.get(f"{api_url}/v1/me", headers=account.auth) as r:
        assert (await r.json())["bio"] == ""


async def test_an_oversize_body_is_413(http, api_url, settings):
    body = {"username": unique_username(), "password": "x" * (settings.max_json_body_bytes + 10)}
    async with http.post(f"{api_url}/v1/accounts", json=body) as response:
        await expect_error(response, 413, "payload_too_large")


async def test_a_body_that_is_not_json_is_415(http, api_url):
    async with http.post(f"{api_url}/v1/accounts", data={"username": "abc", "password": "x" * 8}) as response:
        await expect_error(response, 415)


@pytest.mark.parametrize("username", ["ab", "a" * 31, "bad name", "naïve", "semi;colon", "drop--table", ""])
async def test_invalid_usernames_are_422_and_create_nothing(http, api_url, account, username):
    async with http.post(f"{api_url}/v1/accounts", json={"username": username, "password": "long enough"}) as r:
        await expect_error(r, 422)


@pytest.mark.parametrize("password", ["short", "x" * 257, "tab\tand\x00null"])
async def test_invalid_passwords_are_422(http, api_url, account, password):
    username = unique_username()
    async with http.post(f"{api_url}/v1/accounts", json={"username": username, "password": password}) as r:
        await expect_error(r, 422)
    assert not await username_exists(http, api_url, account, username)


@pytest.mark.parametrize("username", ["", "   ", "ab", "not a name", "x" * 64])
async def test_a_login_with_a_name_no_account_can_hold_is_401_like_a_wrong_password(http, api_url, username):
    async with http.post(f"{api_url}/v1/sessions", json={"username": username, "password": "x"}) as response:
        await expect_error(response, 401, "invalid_credentials")


async def test_a_name_no_account_can_hold_is_not_counted_per_username(http, api_url, settings):
    """It has no password to guess (its address is still counted): so a fuzzer or a stranger trying it
    cannot make it 429 for the next caller."""
    impossible = f"no-such-{secrets.token_hex(4)}"  # '-' is no username character
    for _ in range(settings.login_rate_per_username + 2):
        async with http.post(f"{api_url}/v1/sessions", json={"username": impossible, "password": "x"}) as r:
            await expect_error(r, 401, "invalid_credentials")


@pytest.mark.parametrize("field", ["display_name", "bio"])
@pytest.mark.parametrize("invisible", INVISIBLE)
async def test_invisible_controls_in_a_profile_are_422_and_change_nothing(http, api_url, account, field, invisible):
    async with http.patch(f"{api_url}/v1/me", json={field: f"gpj.{invisible}exe"}, headers=account.auth) as r:
        await expect_error(r, 422, "control_characters")
    async with http.get(f"{api_url}/v1/me", headers=account.auth) as r:
        me = await r.json()
    assert (me["display_name"], me["bio"]) == (account.username, "")


@pytest.mark.parametrize("invisible", INVISIBLE)
async def test_invisible_controls_in_a_new_accounts_display_name_are_422_and_create_nothing(
    http, api_url, account, invisible
):
    username = unique_username()
    body = {"username": username, "password": "long enough", "display_name": f"admin{invisible}"}
    async with http.post(f"{api_url}/v1/accounts", json=body) as response:
        await expect_error(response, 422, "control_characters")
    assert not await username_exists(http, api_url, account, username)


async def test_joiners_and_right_to_left_text_are_a_display_name_like_any_other(http, api_url, account):
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # three emoji joined by ZWJ
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a word with a ZWNJ
    name = f"\u05e9\u05dc\u05d5\u05dd {family} {persian}"
    async with http.patch(f"{api_url}/v1/me", json={"display_name": name}, headers=account.auth) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["display_name"] == name


async def test_a_password_may_hold_invisible_controls(http, api_url):
    """A password is never shown: only control characters are refused in it."""
    username, password = unique_username(), "pass\u200eword\u202e"
    async with http.post(f"{api_url}/v1/accounts", json={"username": username, "password": password}) as response:
        assert response.status == 201, await response.text()
    async with http.post(f"{api_url}/v1/sessions", json={"username": username, "password": password}) as response:
        assert response.status == 201, await response.text()


@pytest.mark.parametrize("cursor", ["garbage", "eyJrIjoiZm9sbG93ZXJzIiwicCI6e319", "A" * 5000, "%00"])
async def test_garbage_cursors_are_400(http, api_url, account, cursor):
    url = f"{api_url}/v1/users/{account.id}/followers"
    async with http.get(url, params={"cursor": cursor}, headers=account.auth) as response:
        await expect_error(response, 400, "invalid_cursor")


BIGINT_MAX = (1 << 63) - 1
# signed with the API's own secret, so each passes the signature: what a leaked secret could forge
FORGED = [
    ("/v1/users/{id}/followers", b"[1, 2]"),
    ("/v1/users/{id}/followers", b"not json"),
    ("/v1/users/{id}/followers", b'{"k": "followers", "p": 7}'),
    ("/v1/users/{id}/followers", b'{"k": "followers", "p": {"b": 0, "a": %d}}' % (BIGINT_MAX + 1)),
    ("/v1/users/{id}/followers", b'{"k": "followers", "p": {"b": %d, "a": 1}}' % (1 << 31)),
    ("/v1/users/{id}/following", b'{"k": "following", "p": {"a": %d}}' % ((1 << 64) - 1)),
    ("/v1/users/{id}/posts", b'{"k": "user-posts", "p": {"b": 0, "a": %d}}' % (BIGINT_MAX + 1)),
    ("/v1/feed?order=chronological", b'{"k": "chronological", "p": {"a": %d}}' % (BIGINT_MAX + 1)),
    ("/v1/notifications", b'{"k": "notifications", "p": {"p": %d, "g": "x"}}' % (BIGINT_MAX + 1)),
]


@pytest.mark.parametrize("path, payload", FORGED)
async def test_a_signed_cursor_that_is_not_a_position_is_400(http, api_url, account, settings, path, payload):
    cursor = CursorCodec(settings.secret_key).sign(payload)
    url = f"{api_url}{path.format(id=account.id)}"
    async with http.get(url, params={"cursor": cursor}, headers=account.auth) as response:
        await expect_error(response, 400, "invalid_cursor")


async def test_a_cursor_from_another_list_is_400(http, api_url, account):
    star = await register(http, api_url)
    fans = [await register(http, api_url) for _ in range(2)]
    for fan in fans:
        async with http.put(f"{api_url}/v1/users/{star.id}/follow", headers=fan.auth) as r:
            assert r.status == 204
    async with http.get(f"{api_url}/v1/users/{star.id}/followers", params={"limit": "1"}, headers=star.auth) as r:
        cursor = (await r.json())["next_cursor"]
    assert cursor is not None
    async with http.get(f"{api_url}/v1/users/{star.id}/following", params={"cursor": cursor}, headers=star.auth) as r:
        await expect_error(r, 400, "invalid_cursor")


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1e2", "", "¹", "٣"])
async def test_limits_out_of_range_are_400(http, api_url, account, limit):
    url = f"{api_url}/v1/users/{account.id}/followers"
    async with http.get(url, params={"limit": limit}, headers=account.auth) as response:
        await expect_error(response, 400, "invalid_limit")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer short", "Bearer " + "A" * 43, "Bearer " + "é" * 43],
)
async def test_missing_malformed_or_forged_tokens_are_401(http, api_url, header):
    headers = {} if header is None else {"Authorization": header}
    async with http.get(f"{api_url}/v1/me", headers=headers) as response:
        await expect_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_revoked_token_is_401(http, api_url, account):
    async with http.delete(f"{api_url}/v1/sessions/current", headers=account.auth) as response:
        assert response.status == 204
    async with http.patch(f"{api_url}/v1/me", json={"bio": "after logout"}, headers=account.auth) as response:
        await expect_error(response, 401, "invalid_token")


async def test_an_expired_token_is_401(http, api_url, migrated):
    account = await register(http, api_url)
    cluster, cass = await cassandra.connect(migrated, migrated.cassandra_keyspace)
    try:
        token = await SessionStore(await SessionTable(cass).prepare(), ttl_s=1).create(int(account.id))
    finally:
        await cassandra.shutdown(cluster)

    async def status() -> int:
        async with http.get(f"{api_url}/v1/me", headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status

    assert await status() == 200
    await eventually(status, lambda s: s == 401, timeout=10)


def _concrete(path: str, some_id: str) -> str:
    """The path with an id for every `{..._id}` placeholder and a name for the others."""
    return re.sub(r"{(\w+)(?::[^}]*)?}", lambda m: some_id if m.group(1).endswith("_id") else "someone", path)


async def test_every_route_that_needs_a_token_refuses_requests_without_one(http, api_url, account):
    for route in all_routes():
        if route.public:
            continue
        async with http.request(route.method, f"{api_url}{_concrete(route.path, account.id)}") as response:
            await expect_error(response, 401)


async def test_unknown_routes_and_methods_get_json_errors(http, api_url):
    async with http.get(f"{api_url}/v1/nope") as response:
        await expect_error(response, 404, "not_found")
    async with http.post(f"{api_url}/v1/me") as response:
        await expect_error(response, 405, "method_not_allowed")


async def test_the_token_and_ticket_answers_are_never_stored(http, api_url, account):
    login = {"username": account.username, "password": account.password}
    async with http.post(f"{api_url}/v1/sessions", json=login) as response:
        assert response.status == 201 and "token" in await response.json()
        assert response.headers["Cache-Control"] == "no-store"
    async with http.post(f"{api_url}/v1/notifications/ticket", headers=account.auth) as response:
        assert response.status == 201 and "ticket" in await response.json()
        assert response.headers["Cache-Control"] == "no-store"


async def test_json_answers_are_not_sniffed_and_no_answer_names_the_server_software(http, api_url, account):
    requests = [
        ("GET", "/v1/me", account.auth),  # 200
        ("GET", "/v1/me", {}),  # 401
        ("POST", "/v1/sessions", {}),  # 415, before any handler work
        ("GET", "/v1/nope", {}),  # 404 from the router
        ("GET", "/healthz", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/metrics", {}),  # 404: the metrics are the ops listener's
    ]
    for method, path, headers in requests:
        async with http.request(method, f"{api_url}{path}", headers=headers) as response:
            assert response.content_type == "application/json", path
            assert response.headers.get("X-Content-Type-Options") == "nosniff", (method, path, response.status)
            assert response.headers.get("Cache-Control") == "no-store", (method, path, response.status)
            assert "Server" not in response.headers, (path, response.headers["Server"])
    async with http.get(metrics_url(api_url)) as response:  # Prometheus text, on the ops listener
        assert response.status == 200 and "Server" not in response.headers
