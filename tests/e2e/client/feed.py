"""The home feed."""

from __future__ import annotations

from tests.e2e.client.users import Account, register
from tests.support.polling import eventually


async def read_feed(http, api_url, reader: Account, **params) -> tuple[dict, str]:
    """One page of GET /v1/feed (200) and its X-Feed-Cache header."""
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


async def until_in_feed(http, api_url, reader, post_id, present=True, order="chronological", timeout=30.0):
    """Wait until the post is in the reader's feed (or, `present=False`, gone from it)."""
    await eventually(
        lambda: feed_ids(http, api_url, reader, order), lambda ids: (post_id in ids) == present, timeout=timeout
    )


async def active_reader(http, api_url) -> Account:
    """A new account that has opened its feed, so fan-out pushes to it."""
    reader = await register(http, api_url)
    await read_feed(http, api_url, reader)
    return reader
