"""Finding things: search, hashtag pages' counts and trending hashtags."""

from __future__ import annotations

from tests.e2e.client.users import Account


async def search(http, api_url, viewer: Account, kind: str, q: str, **params) -> dict:
    """GET /v1/search/{kind} (users or hashtags) (200); the page."""
    async with http.get(f"{api_url}/v1/search/{kind}", params={"q": q, **params}, headers=viewer.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def usernames(http, api_url, viewer: Account, q: str) -> list[str]:
    return [u["username"] for u in (await search(http, api_url, viewer, "users", q, limit="100"))["items"]]


async def tags(http, api_url, viewer: Account, q: str) -> list[tuple[str, int]]:
    body = await search(http, api_url, viewer, "hashtags", q, limit="100")
    return [(t["tag"], t["post_count"]) for t in body["items"]]


async def hashtag(http, api_url, account: Account, tag: str) -> dict:
    async with http.get(f"{api_url}/v1/hashtags/{tag}", headers=account.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def trending(http, api_url, viewer: Account, window: str = "1h") -> dict[str, dict]:
    """The trending hashtags of `window`, by tag."""
    params = {"window": window, "limit": "100"}
    async with http.get(f"{api_url}/v1/trending/hashtags", params=params, headers=viewer.auth) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["window"] == window
    return {item["tag"]: item for item in body["items"]}
