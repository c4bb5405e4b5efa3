import asyncio
import io

from PIL import Image

from tests.e2e.client.common import expect_error
from tests.e2e.client.posts import PHOTO, SMALL_PHOTO, form, publish, user_posts
from tests.e2e.client.users import register
from tests.support.polling import eventually


async def test_a_post_is_created_with_its_variants_text_and_preview(http, api_url, account, streams_worker):
    caption = "Golden hour at the #Beach with @some_friend #sunset #beach\nsecond line"
    post = await publish(http, api_url, account, caption=caption, location="Lisbon", filter="clarendon")
    assert post["author"] == {"id": account.id, "username": account.username}
    assert post["caption"] == caption
    assert post["hashtags"] == ["beach", "sunset"]
    assert post["mentions"] == ["some_friend"]
    assert (post["location"], post["filter"]) == ("Lisbon", "clarendon")
    assert set(post["media"]) == {"original", "large", "medium", "thumbnail"}
    assert (post["media"]["original"]["width"], post["media"]["original"]["height"]) == (1600, 1200)
    assert post["media"]["large"]["width"] == 1080
    assert post["media"]["medium"]["width"] == 640
    assert post["preview"]
    assert (post["like_count"], post["comment_count"], post["liked_by_me"]) == (0, 0, False)
    async with http.get(f"{api_url}/v1/posts/{post['id']}", headers=account.auth) as response:
        assert await response.json() == post


async def test_media_is_served_immutable_with_etag_and_304(http, api_url, account):
    post = await publish(http, api_url, account)
    url = post["media"]["medium"]["url"]
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert "immutable" in response.headers["Cache-Control"]
        etag = response.headers["ETag"]
        body = await response.read()
    assert Image.open(io.BytesIO(body)).size == (640, 480)
    async with http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304


async def test_a_users_posts_are_listed_newest_first_without_repeats_while_new_ones_arrive(
    http, api_url, account, streams_worker
):
    created = [await publish(http, api_url, account, caption=f"post {i}") for i in range(5)]
    seen, cursor, newcomer = [], None, None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}/v1/users/{account.id}/posts", params=params, headers=account.auth) as r:
            page = await r.json()
        seen += [p["id"] for p in page["items"]]
        if newcomer is None:
            newcomer = await publish(http, api_url, account, caption="arrived while paging")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [p["id"] for p in reversed(created)]
    assert newcomer["id"] not in seen

    async def post_count():
        async with http.get(f"{api_url}/v1/users/{account.id}", headers=account.auth) as r:
            return (await r.json())["post_count"]

    await eventually(post_count, lambda n: n == 6)


async def test_an_idempotency_key_makes_a_retried_upload_create_one_post(http, api_url, account):
    headers = {"Idempotency-Key": "upload-attempt-1"}
    first = await publish(http, api_url, account, headers=headers, caption="once")
    again = await publish(http, api_url, account, headers=headers, caption="once")
    assert again == first
    other = await publish(http, api_url, account, headers={"Idempotency-Key": "upload-attempt-2"}, caption="twice")
    assert other["id"] != first["id"]
    assert [p["id"] for p in await user_posts(http, api_url, account, account.id)] == [other["id"], first["id"]]


async def test_an_idempotency_key_sent_again_with_another_upload_is_refused(http, api_url, account):
    headers = {**account.auth, "Idempotency-Key": "upload-3"}
    first = await publish(http, api_url, account, headers=headers, caption="the first")
    for image, caption in ((PHOTO, "another caption"), (SMALL_PHOTO, "the first")):
        async with http.post(f"{api_url}/v1/posts", data=form(image, caption=caption), headers=headers) as response:
            await expect_error(response, 422, "idempotency_key_reused")
    assert await publish(http, api_url, account, headers=headers, caption="the first") == first
    assert [p["id"] for p in await user_posts(http, api_url, account, account.id)] == [first["id"]]


async def test_concurrent_retries_with_one_idempotency_key_create_one_post(http, api_url, account):
    async def attempt():
        async with http.post(f"{api_url}/v1/posts", data=form(), headers={**account.auth, "Idempotency-Key": "k"}) as r:
            return r.status, await r.json()

    results = await asyncio.gather(*(attempt() for _ in range(5)))
    created = {body["id"] for status, body in results if status == 201}
    assert len(created) == 1
    assert all(status in (201, 409) for status, _ in results)
    assert len(await user_posts(http, api_url, account, account.id)) == 1


async def test_only_the_author_deletes_a_post_and_it_disappears_with_its_media(
    http, api_url, account, streams_worker
):
    stranger = await register(http, api_url)
    post = await publish(http, api_url, account, caption="short-lived #ephemeral")
    async with http.delete(f"{api_url}/v1/posts/{post['id']}", headers=stranger.auth) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "not_post_author"
    async with http.get(f"{api_url}/v1/posts/{post['id']}", headers=stranger.auth) as response:
        assert response.status == 200
    async with http.delete(f"{api_url}/v1/posts/{post['id']}", headers=account.auth) as response:
        assert response.status == 204
    async with http.get(f"{api_url}/v1/posts/{post['id']}", headers=account.auth) as response:
        assert response.status == 404
    for variant in post["media"].values():
        async with http.get(variant["url"]) as response:
            assert response.status == 404
    assert await user_posts(http, api_url, account, account.id) == []
    async with http.delete(f"{api_url}/v1/posts/{post['id']}", headers=account.auth) as response:
        assert response.status == 404

    async def post_count():
        async with http.get(f"{api_url}/v1/users/{account.id}", headers=account.auth) as r:
            return (await r.json())["post_count"]

    await eventually(post_count, lambda n: n == 0)


async def test_filters_are_listed_with_descriptions(http, api_url):
    async with http.get(f"{api_url}/v1/filters") as response:
        assert response.status == 200
        body = await response.json()
    names = {f["name"] for f in body["items"]}
    assert {"clarendon", "gingham", "juno", "lark"} <= names
    assert len(names) >= 8
    assert all(f["description"] for f in body["items"])
