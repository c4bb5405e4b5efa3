"""Search over HTTP with the real stream worker: new users become searchable, followers and post
counts rank results, the exact name comes first, pages neither repeat nor skip, bad input is a 4xx."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from infra.procs import free_port
from tests.e2e.client.common import list_all
from tests.e2e.client.discovery import search, tags, usernames
from tests.e2e.client.posts import post
from tests.e2e.client.users import follow, register, unfollow
from tests.e2e.processes import start_api
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

INDEX_WAIT_S = 30.0  # consumer lag plus a batch or two


def stem() -> str:
    """A name prefix no other test (or run) shares: 11 characters, room for suffixes up to 30."""
    return "s" + uuid.uuid4().hex[:10]


async def test_a_new_user_is_found_by_every_prefix_of_its_name_with_its_profile(http, api_url):
    name = stem()
    viewer, user = await register(http, api_url), await register(http, api_url, f"{name}_new")

    await eventually(lambda: usernames(http, api_url, viewer, name), lambda r: r == [user.username],
                     timeout=INDEX_WAIT_S)
    for q in (name[:3], name, user.username, f"@{user.username.upper()}"):
        assert user.username in await usernames(http, api_url, viewer, q), q
    found = (await search(http, api_url, viewer, "users", user.username))["items"]
    assert found == [{"id": user.id, "username": user.username, "display_name": user.username, "follower_count": 0}]
    assert await usernames(http, api_url, viewer, f"{user.username}x") == []


async def test_a_new_display_name_reaches_the_results(http, api_url):
    viewer, user = await register(http, api_url), await register(http, api_url, f"{stem()}_dn")
    async with http.patch(f"{api_url}/v1/me", json={"display_name": "Renamed Person"}, headers=user.auth) as r:
        assert r.status == 200, await r.text()

    async def display_names():
        return [u["display_name"] for u in (await search(http, api_url, viewer, "users", user.username))["items"]]

    await eventually(display_names, lambda r: r == ["Renamed Person"], timeout=INDEX_WAIT_S)


async def test_users_rank_by_followers_and_follows_and_unfollows_re_rank_them(http, api_url):
    name = stem()
    a, b, c = [await register(http, api_url, f"{name}_{s}") for s in "abc"]
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(2)))
    await follow(http, api_url, fans[0], b)
    for fan in fans:
        await follow(http, api_url, fan, c)

    ranked = [c.username, b.username, a.username]
    await eventually(lambda: usernames(http, api_url, a, name), lambda r: r == ranked, timeout=INDEX_WAIT_S)
    counts = [u["follower_count"] for u in (await search(http, api_url, a, "users", name))["items"]]
    assert counts == [2, 1, 0]

    for fan in fans:
        await unfollow(http, api_url, fan, c)
    # c is back at 0 followers: tied with a, and ties go by name
    ranked = [b.username, a.username, c.username]
    await eventually(lambda: usernames(http, api_url, a, name), lambda r: r == ranked, timeout=INDEX_WAIT_S)


async def test_the_exact_name_comes_first_even_when_less_followed(http, api_url):
    name = stem()
    exact, fan_account = await register(http, api_url, name), await register(http, api_url, f"{name}_fan")
    follower = await register(http, api_url)
    await follow(http, api_url, follower, fan_account)

    def fan_ranked(r):
        return [u["follower_count"] for u in r["items"]] == [0, 1]

    body = await eventually(lambda: search(http, api_url, follower, "users", name), fan_ranked, timeout=INDEX_WAIT_S)
    assert [u["username"] for u in body["items"]] == [exact.username, fan_account.username]
    # as a plain prefix of both, the more followed comes first
    assert await usernames(http, api_url, follower, name[:-1]) == [fan_account.username, exact.username]


async def test_hashtags_rank_by_post_count_and_a_tag_with_no_posts_left_leaves(http, api_url, account):
    name = stem()
    one, two = f"{name}one", f"{name}two"
    await post(http, api_url, account, f"#{one}")
    second = [await post(http, api_url, account, f"#{two} #{one.upper()}"),
              await post(http, api_url, account, f"#{two}")]
    await post(http, api_url, account, f"again #{one}")

    await eventually(lambda: tags(http, api_url, account, name), lambda r: r == [(one, 3), (two, 2)],
                     timeout=INDEX_WAIT_S)
    assert await tags(http, api_url, account, f"#{two.upper()}") == [(two, 2)]
    assert await tags(http, api_url, account, two[:-1]) == [(two, 2)]

    for post_id in second:
        async with http.delete(f"{api_url}/v1/posts/{post_id}", headers=account.auth) as response:
            assert response.status == 204
    await eventually(lambda: tags(http, api_url, account, name), lambda r: r == [(one, 2)], timeout=INDEX_WAIT_S)


async def test_pages_follow_the_ranking_without_repeats_or_skips(http, api_url):
    name = stem()
    users = [await register(http, api_url, f"{name}_{i}") for i in range(7)]
    star = users[4]
    await follow(http, api_url, users[0], star)

    def ready(body):
        return len(body["items"]) == 7 and body["items"][0]["username"] == star.username

    whole = await eventually(lambda: search(http, api_url, star, "users", name, limit="100"), ready,
                             timeout=INDEX_WAIT_S)
    assert whole["next_cursor"] is None
    for limit in (1, 3, 7):
        paged = await list_all(http, api_url, star, f"/v1/search/users?q={name}", limit)
        assert paged == whole["items"], limit
    # the exact name leads the first page and is not repeated on later ones
    registered = await register(http, api_url, name)
    await eventually(lambda: usernames(http, api_url, star, name), lambda r: len(r) == 8, timeout=INDEX_WAIT_S)
    paged = await list_all(http, api_url, star, f"/v1/search/users?q={name}", 1)
    assert paged[0]["username"] == registered.username
    assert len({u["username"] for u in paged}) == len(paged) == 8


@pytest.mark.parametrize(("kind", "q"), [
    ("users", None), ("users", ""), ("users", "@"), ("users", "a b"), ("users", "ünï"), ("users", "a" * 31),
    ("users", "no-dash"), ("users", " alice"), ("hashtags", None), ("hashtags", ""), ("hashtags", "a" * 102),
])
async def test_a_query_outside_the_documented_one_is_400(http, api_url, account, kind, q):
    params = {} if q is None else {"q": q}
    async with http.get(f"{api_url}/v1/search/{kind}", params=params, headers=account.auth) as response:
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["code"] == "invalid_query"


@pytest.mark.parametrize("q", ["#", "no-dash", "two words", "a" * 101])
async def test_a_hashtag_query_no_tag_could_start_with_finds_nothing(http, api_url, account, q):
    """Tags are words of any script, which the document's pattern cannot say: such a q is valid and finds nothing."""
    async with http.get(f"{api_url}/v1/search/hashtags", params={"q": q}, headers=account.auth) as response:
        assert response.status == 200, await response.text()
        assert await response.json() == {"items": [], "next_cursor": None}


async def test_bad_limits_and_cursors_are_400(http, api_url, account):
    for kind in ("users", "hashtags"):
        url = f"{api_url}/v1/search/{kind}"
        for params, code in (({"q": "a", "limit": "0"}, "invalid_limit"), ({"q": "a", "limit": "101"}, "invalid_limit"),
                             ({"q": "a", "cursor": "garbage"}, "invalid_cursor")):
            async with http.get(url, params=params, headers=account.auth) as response:
                assert response.status == 400, await response.text()
                assert (await response.json())["error"]["code"] == code


async def test_a_cursor_of_another_query_is_400(http, api_url):
    name = stem()
    viewer = (await asyncio.gather(*(register(http, api_url, f"{name}_{i}") for i in range(2))))[0]
    body = await eventually(lambda: search(http, api_url, viewer, "users", name, limit="1"),
                            lambda r: r["next_cursor"] is not None, timeout=INDEX_WAIT_S)
    params = {"q": name[:-1], "cursor": body["next_cursor"]}
    async with http.get(f"{api_url}/v1/search/users", params=params, headers=viewer.auth) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_cursor"


async def test_search_needs_a_token(http, api_url):
    for kind in ("users", "hashtags"):
        async with http.get(f"{api_url}/v1/search/{kind}", params={"q": "abc"}) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthorized"


async def test_with_redis_down_search_is_503_with_retry_after(http, api_url, migrated):
    process, url = start_api("api-search-no-redis", {"PHOTOS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    try:
        viewer = await register(http, url)
        for kind in ("users", "hashtags"):
            for _ in range(2):  # the first request finds Redis down, the second the open breaker
                async with http.get(f"{url}/v1/search/{kind}", params={"q": "abc"}, headers=viewer.auth) as r:
                    assert r.status == 503, await r.text()
                    assert int(r.headers["Retry-After"]) >= 1
                    assert (await r.json())["error"]["code"] == "service_unavailable"
    finally:
        process.stop()


async def test_an_account_made_while_kafka_is_down_is_indexed_by_its_first_follower(http, api_url, migrated):
    process, url = start_api("api-search-no-kafka", {"PHOTOS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    try:
        user = await register(http, url, f"{stem()}_nokafka")  # registration needs only Cassandra
    finally:
        process.stop()
    fan = await register(http, api_url)
    assert await usernames(http, api_url, fan, user.username) == []  # no event: not indexed yet
    await follow(http, api_url, fan, user)  # follow_graph writes the whole entry from the row
    found = await eventually(lambda: search(http, api_url, fan, "users", user.username),
                             lambda r: len(r["items"]) == 1, timeout=INDEX_WAIT_S)
    assert found["items"][0] | {"display_name": None} == {
        "id": user.id, "username": user.username, "display_name": None, "follower_count": 1}
