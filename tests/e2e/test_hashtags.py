import uuid

from tests.e2e.client.common import list_all
from tests.e2e.client.discovery import hashtag
from tests.e2e.client.posts import publish
from tests.support.polling import eventually


async def test_a_hashtag_page_lists_its_posts_newest_first_and_drops_deleted_ones(http, api_url, account):
    tag = f"tag{uuid.uuid4().hex[:12]}"
    first = await publish(http, api_url, account, caption=f"one #{tag.upper()}")
    second = await publish(http, api_url, account, caption=f"two #{tag} #other{tag}")
    third = await publish(http, api_url, account, caption=f"three #{tag}")
    await publish(http, api_url, account, caption="untagged")

    page = await list_all(http, api_url, account, f"/v1/hashtags/{tag}/posts", limit=2)
    assert [p["id"] for p in page] == [third["id"], second["id"], first["id"]]
    assert page[1]["hashtags"] == [tag, f"other{tag}"]
    assert page[0]["author"]["id"] == account.id

    # '#' and upper case name the same tag
    same = await list_all(http, api_url, account, f"/v1/hashtags/%23{tag.upper()}/posts", limit=20)
    assert [p["id"] for p in same] == [third["id"], second["id"], first["id"]]

    async with http.delete(f"{api_url}/v1/posts/{second['id']}", headers=account.auth) as response:
        assert response.status == 204
    remaining = await list_all(http, api_url, account, f"/v1/hashtags/{tag}/posts", limit=20)
    assert [p["id"] for p in remaining] == [third["id"], first["id"]]


async def test_an_unknown_tag_is_an_empty_page_and_an_invalid_one_is_404(http, api_url, account):
    assert await list_all(http, api_url, account, f"/v1/hashtags/none{uuid.uuid4().hex}/posts", limit=20) == []
    for invalid in ("12345", "no-dash", "a" * 101):
        async with http.get(f"{api_url}/v1/hashtags/{invalid}/posts", headers=account.auth) as response:
            assert response.status == 404, invalid
            assert (await response.json())["error"]["code"] == "invalid_hashtag"


async def test_post_count_is_recounted_by_the_agent_and_deleted_posts_stop_counting(
    http, api_url, account, streams_worker
):
    tag = f"count{uuid.uuid4().hex[:12]}"
    assert await hashtag(http, api_url, account, tag) == {"tag": tag, "post_count": 0}
    posts = [await publish(http, api_url, account, caption=f"#{tag} number {n}") for n in range(3)]
    await eventually(lambda: hashtag(http, api_url, account, tag), lambda body: body["post_count"] == 3)
    assert await hashtag(http, api_url, account, f"%23{tag.upper()}") == {"tag": tag, "post_count": 3}

    async with http.delete(f"{api_url}/v1/posts/{posts[1]['id']}", headers=account.auth) as response:
        assert response.status == 204
    await eventually(lambda: hashtag(http, api_url, account, tag), lambda body: body["post_count"] == 2)
    assert await hashtag(http, api_url, account, tag) == {"tag": tag, "post_count": 2}

