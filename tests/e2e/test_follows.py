import asyncio

from tests.e2e.client.common import list_all
from tests.e2e.client.users import follow_counts, follow_status, get_user, register
from tests.e2e.processes import isolated_api_fixture, isolated_env
from tests.support.polling import eventually


async def test_follow_shows_in_both_lists_and_in_followed_by_me(http, api_url, streams_worker):
    alice, bob = await register(http, api_url), await register(http, api_url)
    assert await follow_status(http, api_url, alice, bob.id) == 204
    assert (await get_user(http, api_url, alice, bob.id))["followed_by_me"] is True
    assert (await get_user(http, api_url, bob, alice.id))["followed_by_me"] is False
    followers = await list_all(http, api_url, alice, f"/v1/users/{bob.id}/followers", 10)
    assert [u["id"] for u in followers] == [alice.id]
    following = await list_all(http, api_url, bob, f"/v1/users/{alice.id}/following", 10)
    assert [(u["id"], u["followed_by_me"]) for u in following] == [(bob.id, False)]
    await eventually(lambda: follow_counts(http, api_url, alice, bob.id), lambda c: c == (1, 0))
    await eventually(lambda: follow_counts(http, api_url, alice, alice.id), lambda c: c == (0, 1))


async def test_concurrent_duplicate_follows_count_once(http, api_url, streams_worker):
    fan, star = await register(http, api_url), await register(http, api_url)
    statuses = await asyncio.gather(*(follow_status(http, api_url, fan, star.id) for _ in range(10)))
    assert statuses == [204] * 10
    await eventually(lambda: follow_counts(http, api_url, fan, star.id), lambda c: c[0] == 1)
    followers = await list_all(http, api_url, fan, f"/v1/users/{star.id}/followers", 5)
    assert [u["id"] for u in followers] == [fan.id]


async def test_counts_are_exact_after_follow_unfollow_refollow_with_duplicates(http, api_url, streams_worker):
    star = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(6)))
    # every fan follows twice at once, half unfollow twice at once, one of those re-follows
    await asyncio.gather(*(follow_status(http, api_url, fan, star.id) for fan in fans for _ in range(2)))
    await asyncio.gather(*(follow_status(http, api_url, fan, star.id, "DELETE") for fan in fans[:3] for _ in range(2)))
    assert await follow_status(http, api_url, fans[0], star.id) == 204
    expected = {f.id for f in fans[3:]} | {fans[0].id}
    await eventually(lambda: follow_counts(http, api_url, star, star.id), lambda c: c == (len(expected), 0))
    followers = await list_all(http, api_url, star, f"/v1/users/{star.id}/followers", 2)
    assert {u["id"] for u in followers} == expected
    await eventually(lambda: follow_counts(http, api_url, star, fans[1].id), lambda c: c == (0, 0))
    await eventually(lambda: follow_counts(http, api_url, star, fans[0].id), lambda c: c == (0, 1))


async def test_unfollow_is_idempotent(http, api_url, account):
    other = await register(http, api_url)
    assert await follow_status(http, api_url, account, other.id, "DELETE") == 204
    assert await follow_status(http, api_url, account, other.id) == 204
    assert await follow_status(http, api_url, account, other.id, "DELETE") == 204
    assert await follow_status(http, api_url, account, other.id, "DELETE") == 204
    assert (await get_user(http, api_url, account, other.id))["followed_by_me"] is False
    assert await list_all(http, api_url, account, f"/v1/users/{other.id}/followers", 10) == []


async def test_following_yourself_is_refused(http, api_url, account):
    async with http.put(f"{api_url}/v1/users/{account.id}/follow", headers=account.auth) as response:
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "cannot_follow_self"


async def test_following_a_missing_user_is_not_found(http, api_url, account):
    assert await follow_status(http, api_url, account, "4242424242") == 404
    assert await follow_status(http, api_url, account, "not-an-id") == 404


async def test_follower_lists_page_without_repeats_or_gaps_while_new_followers_arrive(http, api_url):
    star = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(23)))
    await asyncio.gather(*(follow_status(http, api_url, fan, star.id) for fan in fans))
    seen, cursor, late = [], None, []
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}/v1/users/{star.id}/followers", params=params, headers=star.auth) as r:
            page = await r.json()
        seen += [u["id"] for u in page["items"]]
        if not late:  # a newcomer follows between pages
            late.append(await register(http, api_url))
            await follow_status(http, api_url, late[0], star.id)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert {f.id for f in fans} <= set(seen)
    assert seen == sorted(seen, key=int)  # one stable order: the cursor is a position in it


CAP = 5
capped_api = isolated_api_fixture("followcap", isolated_env("followcap", PHOTOS_MAX_FOLLOWING=str(CAP)))


async def test_concurrent_follows_never_pass_the_cap(http, capped_api, storage, cass):
    """The cap holds against the edges themselves, not the worker's count: concurrent follows cannot all take
    the last places (this API's events go to topics no worker reads, so the derived count stays 0)."""
    fan = await register(http, capped_api)
    stars = await asyncio.gather(*(register(http, capped_api) for _ in range(6 * CAP)))

    async def follow_reply(star) -> tuple[int, str | None]:
        async with http.put(f"{capped_api}/v1/users/{star.id}/follow", headers=fan.auth) as response:
            return response.status, (await response.json())["error"]["code"] if response.status != 204 else None

    async def truth() -> tuple[int, int]:
        """The edges in `following`, and the count kept beside them."""
        rows = await cass.rows("SELECT edge_count FROM following WHERE user_id = %s LIMIT 1", (int(fan.id),))
        return await storage.follows.count_following(int(fan.id)), rows[0].edge_count

    replies = await asyncio.gather(*(follow_reply(star) for star in stars))
    assert sorted(replies, key=str) == [(204, None)] * CAP + [(409, "following_limit")] * (5 * CAP)
    assert await truth() == (CAP, CAP)
    followed = [star for star, (status, _) in zip(stars, replies, strict=True) if status == 204]
    refused = [star for star, (status, _) in zip(stars, replies, strict=True) if status != 204]
    assert await follow_status(http, capped_api, fan, followed[0].id) == 204  # already followed: still fine

    # at the cap, unfollows and follows at once: never past it, and an unfollow frees a place
    churn = await asyncio.gather(
        *(follow_status(http, capped_api, fan, star.id, "DELETE") for star in followed[:2]),
        *(follow_reply(star) for star in refused),
    )
    assert churn[:2] == [204, 204] and set(churn[2:]) <= {(204, None), (409, "following_limit")}
    edges, counted = await truth()
    assert edges == counted == CAP - 2 + churn[2:].count((204, None)) <= CAP
