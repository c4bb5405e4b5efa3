"""Likes and likers."""

from __future__ import annotations

from tests.e2e.client.posts import get_post
from tests.e2e.client.users import Account


async def like(http, api_url, user: Account, post_id: str, *, liked: bool = True) -> dict:
    """PUT (liked) or DELETE (not liked) the like (200); the answer ({"liked": ..., ...})."""
    method = http.put if liked else http.delete
    async with method(f"{api_url}/v1/posts/{post_id}/like", headers=user.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def like_count(http, api_url, viewer: Account, post_id: str) -> int:
    return (await get_post(http, api_url, viewer, post_id))["like_count"]


async def likers(http, api_url, viewer: Account, post_id: str, limit: int = 100) -> list[str]:
    """Every liker's id, following the cursors to the end."""
    ids, cursor = [], None
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{api_url}/v1/posts/{post_id}/likes", params=params, headers=viewer.auth) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        ids += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
