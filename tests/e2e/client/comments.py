"""Comments and replies."""

from __future__ import annotations

from tests.e2e.client.common import list_all
from tests.e2e.client.posts import get_post
from tests.e2e.client.users import Account


async def comment(
    http, api_url, author: Account, post_id: str, text: str = "nice shot", parent_id: str | None = None,
    key: str | None = None,
) -> dict:
    status, body = await try_comment(http, api_url, author, post_id, text, parent_id, key)
    assert status == 201, body
    return body


async def try_comment(
    http, api_url, author: Account, post_id: str, text: str = "nice shot", parent_id: str | None = None,
    key: str | None = None,
) -> tuple[int, dict]:
    body = {"text": text} | ({"parent_id": parent_id} if parent_id is not None else {})
    headers = author.auth | ({"Idempotency-Key": key} if key else {})
    async with http.post(f"{api_url}/v1/posts/{post_id}/comments", json=body, headers=headers) as response:
        return response.status, await response.json()


async def delete_comment(http, api_url, user: Account, comment_id: str) -> int:
    async with http.delete(f"{api_url}/v1/comments/{comment_id}", headers=user.auth) as response:
        return response.status


async def top_level(http, api_url, viewer: Account, post_id: str, limit: int = 100) -> list[dict]:
    """Every top-level comment of the post, following the cursors to the end."""
    return await list_all(http, api_url, viewer, f"/v1/posts/{post_id}/comments", limit)


async def replies(http, api_url, viewer: Account, comment_id: str, limit: int = 100) -> list[dict]:
    return await list_all(http, api_url, viewer, f"/v1/comments/{comment_id}/replies", limit)


async def comment_count(http, api_url, viewer: Account, post_id: str) -> int:
    return (await get_post(http, api_url, viewer, post_id))["comment_count"]


async def reply_counts(http, api_url, viewer: Account, post_id: str) -> dict[str, int]:
    """reply_count of every listed top-level comment of the post."""
    return {c["id"]: c["reply_count"] for c in await top_level(http, api_url, viewer, post_id)}
