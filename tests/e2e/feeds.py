"""Feed helpers for the e2e tests: read, follow, publish, and look at what fan-out wrote."""

from __future__ import annotations

from loadtest.images import striped_jpeg
from tests.e2e.conftest import Account, register
from tests.e2e.posting import publish
from tests.support.polling import eventually

SMALL_PHOTO = striped_jpeg(96, 72)


async def read_feed(http, api_url, reader: Account, **params) -> tuple[dict, str]:
    async with http.get(f"{api_url}/v1/feed", params=params, headers=reader.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json(), response.headers["X-Feed-Cache"]


async def feed_ids(http, api_url, reader: Account, order: str = "chronological") -> list[str]:
    """Every post id of the reader's feed, following the cursors to the end."""
    ids, cursor = [], None
    while True:
        more = {"cursor": cursor} if cursor else {}
        page, _ = await read_feed(http, api_url, reader, order=order, limit="50", **more)
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def post(http, api_url, author: Account, caption: str = "") -> str:
    return (await publish(http, api_url, author, image=SMALL_PHOTO, caption=caption))["id"]


async def follow(http, api_url, reader: Account, author: Account) -> None:
    async with http.put(f"{api_url}/v1/users/{author.id}/follow", headers=reader.auth) as response:
        assert response.status == 204


async def unfollow(http, api_url, reader: Account, author: Account) -> None:
    async with http.delete(f"{api_url}/v1/users/{author.id}/follow", headers=reader.auth) as response:
        assert response.status == 204


async def active_reader(http, api_url) -> Account:
    """A new account that has opened its feed, so fan-out pushes to it."""
    reader = await register(http, api_url)
    await read_feed(http, api_url, reader)
    return reader


async def pushed(cass, reader: Account, post_id: str) -> bool:
    row = await cass.one(
        "SELECT post_id FROM feed_items WHERE user_id = %s AND post_id = %s", (int(reader.id), int(post_id))
    )
    return row is not None


async def is_celebrity(cass, account: Account) -> bool:
    return await cass.one("SELECT user_id FROM celebrities WHERE user_id = %s", (int(account.id),)) is not None


async def until_in_feed(http, api_url, reader, post_id, present=True, order="chronological", timeout=30.0):
    await eventually(
        lambda: feed_ids(http, api_url, reader, order), lambda ids: (post_id in ids) == present, timeout=timeout
    )
